"""What keeps a local review server local: the Host it answers to, an access token, a CSRF
value for every change, and headers that keep pages from being framed or leaking the token.

* Requests must name an allowed Host (the address served, ``localhost``): a web page elsewhere
  cannot reach the server through a DNS name pointed at 127.0.0.1 (DNS rebinding). Listening
  on every address (``--host 0.0.0.0``), any Host is answered: the token still guards it.
* Every request carries the token: in the address that ``faceclust serve`` prints
  (``?token=...``, then moved into an HttpOnly, SameSite=Strict cookie and dropped from the
  address) or in that cookie. Without it: 403. Other users of a shared NAS cannot change people.
* Every POST carries the CSRF value (a form field ``csrf`` or the header ``X-CSRF-Token``),
  checked by :meth:`Guard.check_csrf`; other methods than GET, HEAD and POST are refused.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qsl, quote, urlencode

COOKIE = "faceclust_token"
WILDCARDS = ("0.0.0.0", "::", "")
HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self'; script-src 'self'; style-src 'self'; "
                                 b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class Guard:
    """The secrets of one server run, and the hosts it answers to."""

    def __init__(self, host: str, port: int, token: str | None = None, csrf: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.csrf = csrf or secrets.token_urlsafe(24)
        self.cookie = f"{COOKIE}_{port}"  # cookies ignore ports: two servers must not share one
        self.hosts: set[str] | None
        if host in WILDCARDS:
            # Listening on every address: reached by whatever name or address the network
            # gives this machine, so any Host is answered (the token is still required).
            self.hosts = None
            return
        names = {host, "localhost", "127.0.0.1", "[::1]"} if host in ("127.0.0.1", "localhost", "::1") else {host}
        if ":" in host and not host.startswith("["):
            names.add(f"[{host}]")
        self.hosts = {h.lower() for h in {f"{name}:{port}" for name in names} | names}

    def host_ok(self, host: str) -> bool:
        return self.hosts is None or host.lower() in self.hosts

    def check_csrf(self, value: str | None) -> bool:
        return bool(value) and secrets.compare_digest(str(value), self.csrf)

    def _token_ok(self, value: str | None) -> bool:
        return bool(value) and secrets.compare_digest(str(value), self.token)


def _cookie(headers: dict[bytes, bytes], wanted: str) -> str | None:
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        if name == wanted:
            return value
    return None


async def _plain(send, status: int, text: str, extra: list | None = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *HEADERS, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """ASGI middleware: Host and token checks, the token moved into a cookie, security headers."""

    def __init__(self, app, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.guard.host_ok(host):
            return await _plain(send, 400, "this server answers only at the address 'faceclust serve' printed")
        if scope["method"] not in ("GET", "HEAD", "POST"):
            return await _plain(send, 405, "method not allowed")
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = next((v for k, v in query if k == "token"), None)
        if given is not None and self.guard._token_ok(given):
            if scope["method"] in ("GET", "HEAD"):
                # The token goes into a cookie and out of the address bar (and out of history).
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                # Always a path on this server ("//host" would be another site), re-quoted.
                location = "/" + quote(scope["path"].lstrip("/\\")) + (f"?{rest}" if rest else "")
                cookie = f"{self.guard.cookie}={self.guard.token}; HttpOnly; SameSite=Strict; Path=/"
                return await _plain(send, 303, "", [(b"location", location.encode("latin-1", "replace")),
                                                    (b"set-cookie", cookie.encode("latin-1"))])
        elif not self.guard._token_ok(_cookie(headers, self.guard.cookie)):
            return await _plain(send, 403, "forbidden: open the address that 'faceclust serve' printed "
                                           "(it holds the access token)")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in present)]
            await send(message)

        return await self.app(scope, receive, send_with_headers)
