"""WebSocket routes served straight from the ASGI entry (app/core/direct_sockets.py): which routes
qualify, that Beacon's two sockets do, and on a real uvicorn server that a direct socket, a socket
FastAPI still routes, an unknown socket path and plain HTTP each get what they got before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.core.direct_sockets import DirectSockets, direct_routes
from app.main import create_app
from tests.conftest import LiveServer, free_port


def _token() -> str:
    return "from-a-dependency"


async def _where(websocket: WebSocket, extra: str = "") -> None:
    await websocket.accept()
    # FastAPI's router puts the endpoint it matched into the scope; a direct socket has none.
    routed = "endpoint" in websocket.scope
    await websocket.send_text(json.dumps({"routed_by_fastapi": routed, "extra": extra}))
    await websocket.close()


def _router() -> APIRouter:
    router = APIRouter()

    @router.websocket("/plain")
    async def plain(websocket: WebSocket) -> None:
        await _where(websocket)

    @router.websocket("/with-dependency")
    async def with_dependency(websocket: WebSocket, token: str = Depends(_token)) -> None:
        await _where(websocket, token)

    @router.websocket("/rooms/{room}")
    async def with_path_parameter(websocket: WebSocket, room: str) -> None:
        await _where(websocket, room)

    @router.get("/page")
    async def page() -> dict[str, str]:
        return {"page": "yes"}

    return router


def test_only_fixed_paths_whose_endpoint_takes_just_the_websocket_qualify() -> None:
    assert set(direct_routes(_router().routes)) == {"/plain"}


def test_beacon_serves_both_of_its_sockets_directly() -> None:
    app = create_app()
    layer = app.build_middleware_stack()
    while not isinstance(layer, DirectSockets):
        layer = getattr(layer, "app")  # noqa: B009 - each middleware's next layer
    assert layer.paths == {"/v1/chat", "/v1/volunteer"}


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    router = _router()
    app = FastAPI()
    app.include_router(router)
    app.add_middleware(DirectSockets, routes=direct_routes(router.routes))
    app.state.ws_max_size = 2**16
    live = LiveServer(app, free_port())
    await live.start()
    yield live
    await live.stop()


async def _first_frame(url: str) -> dict[str, object]:
    async with connect(url) as ws:
        frame: dict[str, object] = json.loads(await ws.recv())
        return frame


async def test_a_direct_socket_skips_fastapi_and_the_others_still_go_through_it(
    server: LiveServer,
) -> None:
    assert await _first_frame(f"{server.ws_url}/plain") == {
        "routed_by_fastapi": False,
        "extra": "",
    }
    assert await _first_frame(f"{server.ws_url}/with-dependency") == {
        "routed_by_fastapi": True,
        "extra": "from-a-dependency",
    }
    assert await _first_frame(f"{server.ws_url}/rooms/blue") == {
        "routed_by_fastapi": True,
        "extra": "blue",
    }
    with pytest.raises(InvalidStatus) as refused:
        await _first_frame(f"{server.ws_url}/nowhere")
    assert refused.value.response.status_code == 403
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert (await http.get("/page")).json() == {"page": "yes"}
        assert (await http.get("/plain")).status_code == 404
