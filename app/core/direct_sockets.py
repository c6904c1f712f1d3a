"""WebSocket routes dispatched straight from the app's ASGI entry.

FastAPI sends every connection through layers built for requests: its exception handlers, the
exit stack for dependencies with ``yield``, the router's match against every route, dependency
solving, and a wrapper around the connection's ``send`` that every outgoing frame then passes
through. A Beacon socket endpoint needs none of them: it takes only the WebSocket, and its
protocol answers bad input itself, with error frames and close codes (docs/protocol.md). Measured
with py-spy under `bench.drive_by_flood`, those layers were ~15 % of the server's CPU per
drive-by session (docs/performance.md), and they are paid again on every frame of every chat.

:class:`DirectSockets` sits just inside Starlette's outermost error middleware and hands such a
socket to its endpoint directly. Only routes that cannot tell the difference are taken
(:func:`direct_routes`): a fixed path, no dependencies, and an endpoint whose one parameter is the
WebSocket. Anything else, every HTTP request included, goes through FastAPI as before, so a path
that is not one of these still gets FastAPI's answer (a refused handshake). The path is compared
as the server reports it: behind a ``root_path`` nothing matches and FastAPI serves it all.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping

from fastapi.routing import APIWebSocketRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

SocketEndpoint = Callable[[WebSocket], Awaitable[None]]


def direct_routes(routes: Iterable[BaseRoute]) -> dict[str, SocketEndpoint]:
    """The WebSocket routes among ``routes`` that can be served without FastAPI's layers."""
    found: dict[str, SocketEndpoint] = {}
    for route in routes:
        if not isinstance(route, APIWebSocketRoute) or route.param_convertors:
            continue
        if route.dependencies or route.dependant.dependencies:
            continue
        if not _takes_only_the_websocket(route.endpoint):
            continue
        found[route.path] = route.endpoint
    return found


def _takes_only_the_websocket(endpoint: Callable[..., object]) -> bool:
    parameters = list(inspect.signature(endpoint).parameters.values())
    if len(parameters) != 1:
        return False
    hints = typing.get_type_hints(endpoint)
    return hints.get(parameters[0].name) is WebSocket


class DirectSockets:
    """ASGI middleware: a WebSocket on one of ``routes``' paths goes straight to its endpoint."""

    def __init__(self, app: ASGIApp, *, routes: Mapping[str, SocketEndpoint]) -> None:
        self._app = app
        self._routes = dict(routes)

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            endpoint = self._routes.get(scope["path"])
            if endpoint is not None:
                await endpoint(WebSocket(scope, receive, send))
                return
        await self._app(scope, receive, send)


__all__ = ["DirectSockets", "SocketEndpoint", "direct_routes"]
