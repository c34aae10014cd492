"""The operator console: one HTML page at ``/ui``, served by the API it calls.

The page (``serve/ui/console.html``) is self-contained: its styles and script are inline, it
loads nothing from anywhere but this API, and it needs no build step. It holds no data
itself, so it is served without a token; the operator enters one, the page keeps it in the
browser's ``sessionStorage`` (gone with the tab) and sends it as a bearer token on every
call, so every call is checked, scoped, rate-limited and audited like any other client's.
The reset of the kill switch asks for an admin token each time and never keeps it.
"""

from __future__ import annotations

import functools
from importlib import resources

PAGE = "console.html"
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Inline script and styles only; calls to this origin only; never framed.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    ),
}
"""Response headers of the page."""


@functools.cache
def console_page() -> str:
    """The console's HTML (read once from the package)."""
    return resources.files("serve").joinpath("ui", PAGE).read_text(encoding="utf-8")
