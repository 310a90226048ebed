"""The service's gate, before any endpoint runs: the API key of every POST (401) and the body size limit (413)."""

from __future__ import annotations

import hmac
import json
from typing import Any

API_KEY_HEADER = "X-API-Key"
API_KEY_ENV = "LSTMKIT_API_KEY"


class BodyGuard:
    """ASGI middleware: the API key on every POST (401), then the body size limit (413), before the app reads."""

    def __init__(self, app: Any, key: str | None, max_bytes: int):
        """Wrap `app`; `key` None refuses every POST (no key configured)."""
        self.app = app
        self.key = key.encode() if key is not None else None
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Check key and size of POST requests; pass everything else through."""
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not key_matches(self.key, headers.get(API_KEY_HEADER.lower().encode())):
            await _send_json(send, 401, missing_key_message(self.key))
            return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await _send_json(send, 400, "Content-Length is not a number")
                return
            if n > self.max_bytes:
                await _send_json(send, 413, f"request body of {n} bytes exceeds serve.max_body_bytes ({self.max_bytes})")
                return
        body = bytearray()
        more = True
        while more:  # read (at most max_bytes) before the app sees anything
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _send_json(send, 413, f"request body exceeds serve.max_body_bytes ({self.max_bytes})")
                return
        sent = False

        async def replay() -> dict:
            """The buffered body once, then whatever the server says (a disconnect)."""
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def key_matches(expected: bytes | None, given: bytes | None) -> bool:
    """Constant-time comparison of the API key (False when either is missing)."""
    return expected is not None and given is not None and hmac.compare_digest(expected, given)


def missing_key_message(expected: bytes | None) -> str:
    """The 401 message."""
    if expected is None:
        return f"this service has no API key configured ({API_KEY_ENV}): every POST is refused"
    return f"missing or wrong API key: send the header {API_KEY_HEADER}"


async def _send_json(send: Any, status: int, detail: str) -> None:
    """Answer a request directly from the ASGI middleware with {"detail": ...}."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
