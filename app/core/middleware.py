"""Security headers on every response (pure ASGI: no body buffering, no per-request task).

- `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` everywhere;
  `X-Frame-Options: DENY` so no page can be framed (click-jacking);
- `Cache-Control: no-store` on every answer whose route did not set its own: API JSON, every
  download of personal data (member, lead, analytics and inventory CSVs, the privacy export,
  import rejects, the pages' downloads), the trainers' calendar feeds and the device protocols'
  answers (which carry member names and cards) — so no proxy or browser cache keeps personal
  data. One rule rather than a header per route: a new download cannot forget it. Only static
  assets (`/static`, a short public cache) set their own.
"""
from fastapi import FastAPI

BASE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in BASE_HEADERS if k not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Add the security headers middleware once (a second call is a no-op)."""
    if getattr(app.state, "security_headers", False):
        return
    app.add_middleware(SecurityHeaders)
    app.state.security_headers = True
