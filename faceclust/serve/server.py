"""Running the review app: bind the address first (so a taken port is a clear error and port 0
picks a free one), then serve with uvicorn until interrupted."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from faceclust.errors import UsageProblem

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@dataclass
class Served:
    url: str  # with the token: what the user opens
    host: str
    port: int
    loopback: bool


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port. Raises UsageProblem when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = "; choose another with --port (0 picks a free one)" if exc.errno in (98, 48) else ""
        raise UsageProblem(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    sock.set_inheritable(True)
    return sock


def _warm(app) -> None:
    try:
        app.app.state.review.suggestions()
    except Exception as exc:  # the page computes them again and shows any error itself
        print(f"faceclust serve: suggestions not ready: {exc}", file=sys.stderr)


def make_server(catalog_path: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, out: Path | None = None):
    """(uvicorn server, its socket, what to tell the user) for ``catalog_path``; nothing runs
    until ``server.run(sockets=[sock])``."""
    import uvicorn

    from faceclust.catalog import Catalog
    from faceclust.serve.app import create_app
    from faceclust.serve.security import Guard

    with Catalog(catalog_path, create=False):
        pass  # a missing or unreadable catalog fails here, with its own message
    sock = bind(host, port)
    port = sock.getsockname()[1]
    guard = Guard(host, port)
    app = create_app(catalog_path, guard, out)
    # The suggestion queue takes seconds to compute in a big library: start before it is asked for.
    threading.Thread(target=_warm, args=(app,), daemon=True, name="faceclust-suggestions").start()
    from faceclust.serve.security import WILDCARDS

    shown = socket.gethostname() if host in WILDCARDS else host  # an address others can open
    shown = f"[{shown}]" if ":" in shown else shown
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    return server, sock, Served(f"http://{shown}:{port}/?token={guard.token}", host, port, is_loopback(host))
