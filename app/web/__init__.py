"""The browser pages: the visitor chat page (``/chat``) and the volunteer dashboard
(``/dashboard``). Plain HTML, CSS and JavaScript modules in ``static/``, served by
``app.routers.pages``; no build step, no framework, nothing fetched from elsewhere at run time.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
