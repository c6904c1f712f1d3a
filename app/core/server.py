"""What uvicorn lacks for a service on the open internet: a deadline for the request head, new
connections that wait their turn while conversations need the event loop, and unparseable
requests answered in the service's error shape (uvicorn answers them in plain text).

Neither of uvicorn's HTTP protocols (httptools, h11) bounds how long a client may take to send
its request line and headers: its keep-alive timer starts only after a response, so a client
that dribbles one header byte every few seconds holds a connection (and a file descriptor)
forever, and a few hundred such clients starve the instance (slowloris). The protocol below
gives every request head ``head_timeout_s`` from the moment the connection opens or the previous
response ends; a byte that arrives does not extend it. A request being served, or a connection
upgraded to a WebSocket, has no deadline: only the head is bounded, bodies are the app's.
Why here and not only at a proxy: docs/operations.md ("Slow clients").

Pacing (app/core/pacing.py): the app's lifespan puts its :class:`AcceptPacer` in the lifespan
state under :data:`PACER_STATE_KEY`, which uvicorn hands every connection's protocol. A held
connection keeps whatever arrived in a buffer and reads nothing more until its turn; it has no
head deadline yet (its wait is bounded by the pacer), so its deadline starts when it goes on.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, ClassVar

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from app.core.pacing import AcceptPacer

if TYPE_CHECKING:
    # Both uvicorn HTTP protocols have what the mixin touches (transport, cycle, the
    # asyncio.Protocol callbacks, on_response_complete); type-check against one of them.
    from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornHTTP
else:
    _UvicornHTTP = object

PACER_STATE_KEY = "beacon.accept_pacer"


def _closing_response(status: bytes, code: str, detail: str) -> bytes:
    """A response written straight to the transport before the connection closes, in the
    service's one error shape (app/core/errors.py), so that even what never reached the app
    is an error a client can read by its code."""
    body = json.dumps({"error": code, "detail": detail}, separators=(",", ":")).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n"
        b"\r\n" + body
    )


_TIMEOUT_RESPONSE = _closing_response(
    b"408 Request Timeout", "request_timeout", "the request head took too long"
)
# What uvicorn answers (as plain text) to bytes that are not HTTP/1.1 at all: a malformed
# request line, header or Content-Length, a bad chunk. Its text says no more than this.
_INVALID_RESPONSE = _closing_response(
    b"400 Bad Request", "invalid_http_request", "the request is not valid HTTP/1.1"
)


class HeadDeadline(_UvicornHTTP):
    """Mixin for a uvicorn HTTP protocol: close a connection whose request head is late."""

    head_timeout_s: ClassVar[float] = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _head_started = False
    # While the pacer holds the connection: what arrived meanwhile (reading is paused).
    _held: bytearray | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pacer = self.app_state.get(PACER_STATE_KEY)
        if isinstance(pacer, AcceptPacer) and not pacer.admit(self._its_turn):
            self._held = bytearray()
            return
        self._track_head()

    def _its_turn(self) -> None:
        held, self._held = self._held, None
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.resume_reading()
        if held:
            self.data_received(bytes(held))
        else:
            self._track_head()

    def data_received(self, data: bytes) -> None:
        if self._held is not None:
            # Pausing in connection_made does not hold on every loop (uvloop starts reading
            # after it), so the first bytes pause the reading instead: one read at most is kept.
            self._held += data
            self.transport.pause_reading()
            return
        if self._head_timer is not None:
            self._head_started = True
        super().data_received(data)
        self._track_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track_head()  # the next request on this keep-alive connection gets its own

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse, in the service's error shape (both
        of its protocols call this, then nothing more on the connection)."""
        self._cancel_head_timer()
        self.transport.write(_INVALID_RESPONSE)
        self.transport.close()

    def _reading_head(self) -> bool:
        """True while no request is being served and the connection is still plain HTTP."""
        if self.transport is None or self.transport.is_closing():
            return False
        if self.transport.get_protocol() is not self:  # upgraded to a WebSocket
            return False
        cycle = self.cycle
        return cycle is None or cycle.response_complete

    def _track_head(self) -> None:
        if not self._reading_head():
            self._cancel_head_timer()
        elif self._head_timer is None:
            self._head_started = False
            self._head_timer = asyncio.get_running_loop().call_later(
                self.head_timeout_s, self._head_timed_out
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._reading_head():
            return
        if self._head_started:
            # Part of a request arrived: say why it ends. An idle connection just closes.
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def http_protocol(
    head_timeout_s: float, base: type[asyncio.Protocol] = AutoHTTPProtocol
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with a head deadline; give
    it to uvicorn as ``http=``."""
    attrs: dict[str, Any] = {"head_timeout_s": head_timeout_s}
    protocol: type[asyncio.Protocol] = type(
        f"{base.__name__}WithHeadDeadline", (HeadDeadline, base), attrs
    )
    return protocol
