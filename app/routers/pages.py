"""The two pages and their files (``app/web/static``), and the visitor page's safety contacts.

Every file is served with a strict Content-Security-Policy: scripts, styles and sockets only
from this origin, no inline code, no frames. HTML is never cached (a quick exit must not leave
the chat in the back/forward cache); the other files are revalidated by ETag.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.core.errors import NotFound, error_responses
from app.escalation.contacts import SafetyContacts, safety_contacts
from app.routers.deps import get_state
from app.web import STATIC_DIR

router = APIRouter()

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # A crisis page must not tell the next site where the visitor came from.
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def _asset(name: str) -> Asset | None:
    """Read once per process: the files ship with the code and change only with a release."""
    path = STATIC_DIR / name
    if not path.is_file():
        return None
    body = path.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body=body, media_type=_TYPES[name.rsplit(".", 1)[1]], etag=etag)


def _serve(request: Request, name: str, *, cache_control: str) -> Response:
    asset = _asset(name)
    if asset is None:
        raise NotFound("no such file")
    headers = {**SECURITY_HEADERS, "Cache-Control": cache_control, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.api_route("/chat", methods=["GET", "HEAD"], include_in_schema=False)
async def chat_page(request: Request) -> Response:
    """The visitor chat page (what a person in crisis sees)."""
    return _serve(request, "chat.html", cache_control="no-store")


@router.api_route("/dashboard", methods=["GET", "HEAD"], include_in_schema=False)
async def dashboard_page(request: Request) -> Response:
    """The volunteer and supervisor dashboard."""
    return _serve(request, "dashboard.html", cache_control="no-store")


@router.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def static_file(request: Request, name: str) -> Response:
    if not _NAME.match(name):
        raise NotFound("no such file")
    return _serve(request, name, cache_control="no-cache")


@router.get(
    "/v1/chat/safety",
    response_model=SafetyContacts,
    tags=["chat"],
    responses=error_responses(422),
)
async def chat_safety(
    request: Request,
    locale: Annotated[
        str | None,
        Query(max_length=16, pattern=r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$"),
    ] = None,
) -> SafetyContacts:
    """Who to call now, for the visitor page's safety panel: the emergency number for the
    locale's region (a wording when the region is unknown) and the hotline partners serving
    its language. No authentication: it is what any visitor is shown."""
    return safety_contacts(get_state(request).escalation.partners, locale)
