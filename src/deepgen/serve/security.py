"""What keeps `deepgen serve` safe to run: page-session tokens for POSTs, request-body and
rate limits, and file paths confined to the served folders."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

from limits import parse, storage, strategies
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_BODY = 16 * 1024  # bytes a request body may hold: a judgement or up to 64 codes

# moving-window limits, per client address unless said
LIMITS = {
    "request": parse("600/second"),  # any request
    "rater": parse("60/minute"),  # new raters of a study
    "judgement": parse("20/second"),  # per rater: far above a person's pace
    "decode": parse("100/second"),  # per explorer session
}


class Sessions:
    """Page sessions: a page is served with (session id, token = HMAC(secret, id)); a POST
    from it sends both back. The secret is drawn when the server starts, so nothing is
    stored and a token cannot be made without it."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def issue(self) -> tuple[str, str]:
        session = secrets.token_hex(12)
        return session, self._sign(session)

    def _sign(self, session: str) -> str:
        return hmac.new(self._secret, session.encode(), hashlib.sha256).hexdigest()

    def valid(self, session: str | None, token: str | None) -> bool:
        if not session or not token or len(session) > 64:
            return False
        return hmac.compare_digest(self._sign(session), token)


class RateLimiter:
    """Moving-window limits (the ``limits`` library, in memory) by kind and key."""

    def __init__(self, limits: dict | None = None) -> None:
        self.limits = dict(LIMITS if limits is None else limits)
        self._window = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    def allow(self, kind: str, key: str) -> bool:
        item = self.limits.get(kind)
        return item is None or self._window.hit(item, kind, key)


class BodyLimit:
    """ASGI middleware: a request whose body exceeds ``limit`` bytes by its Content-Length is
    answered 413, and one with a body but no Content-Length (chunked) 411, before the
    application sees it (the HTTP server holds a body to its Content-Length)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is None and b"transfer-encoding" in headers:
                await _refuse(send, 411, "give the request body's Content-Length")
                return
            if length is not None and (not length.isdigit() or int(length) > self.limit):
                await _refuse(send, 413, f"request body over {self.limit} bytes")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def file_under(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it is a file inside ``root`` after resolving links and
    ``..``; None otherwise (the caller answers 404)."""
    if "\x00" in relative:
        return None
    root = root.resolve()
    try:
        path = (root / relative).resolve()
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path
