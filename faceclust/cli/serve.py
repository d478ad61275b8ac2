"""``faceclust serve``: the review web app on a catalog (thin; see faceclust.serve)."""

from __future__ import annotations

from pathlib import Path

import click

from faceclust.cli.options import catalog_option, option, threads_option
from faceclust.cli.options import catalog_path as _catalog_path


@click.command()
@threads_option
@catalog_option
@option("--host", default=None, show_default="127.0.0.1",
        help="Address to listen on. Anything but this machine's loopback lets other machines reach the "
             "pages (still only with the token); a warning says so.")
@option("--port", type=click.IntRange(0, 65535), default=None, show_default="8765",
        help="Port to listen on (0: any free port).")
@option("--open", "open_browser", is_flag=True, help="Open the pages in the default browser.")
@option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="The albums folder (as given to 'run' or 'albums'): a button on the pages refreshes its albums "
             "and report.")
def serve(catalog, host, port, open_browser, out):
    """Review people in the browser: name them, answer "same person?" suggestions, fix faces.

    Listens on this machine only, behind a random token in the printed address; every change is
    a history entry ('faceclust undo' reverts it as well as the page's Undo). Ctrl+C stops it.
    """
    from faceclust.serve.server import DEFAULT_HOST, DEFAULT_PORT, make_server

    server, sock, served = make_server(_catalog_path(catalog), host or DEFAULT_HOST,
                                       DEFAULT_PORT if port is None else port, out)
    if not served.loopback:
        click.echo(f"warning: listening on {served.host}, reachable from other machines; anyone with the "
                   "address below (it holds the token) can change people", err=True)
    click.echo(f"faceclust serve: open {served.url}  (Ctrl+C stops)")
    if open_browser:
        import webbrowser

        webbrowser.open(served.url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


COMMANDS = (serve,)
