"""Options and helpers shared by every command module (``cli``, ``find_cli``).

Kept apart so the command modules import them without importing each other.
"""

from __future__ import annotations

from pathlib import Path

import click

catalog_option = click.option(
    "--catalog", type=click.Path(dir_okay=False, path_type=Path), default=None,
    envvar="FACECLUST_CATALOG", show_envvar=True,
    help="The catalog file (SQLite). Default: ~/.local/share/faceclust/catalog.sqlite.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress and no summary table.")


def apply_options(command, options: list):
    """Decorate ``command`` with ``options`` in the order they are listed."""
    for option in reversed(options):
        command = option(command)
    return command


DETECT_OPTIONS = [
    click.option("--detector", type=str, default=None,
                 help="Face detector: mmod (default, any angle) or hog (fast, frontal)."),
    click.option("--min-face", type=int, default=None,
                 help="Smallest face wanted, in pixels of the photo [default: 40]."),
]


def detect_options(command):
    """How faces are found in photos: the detector and the smallest face wanted."""
    return apply_options(command, DETECT_OPTIONS)


def given(**options) -> dict:
    """The options the user gave: None means 'the library's default'."""
    return {k: v for k, v in options.items() if v is not None}


CATALOG_META = "faceclust.catalog"
ALBUM_MODES = ("symlink", "hardlink", "copy")  # as faceclust.albums.MODES (not imported: --help stays light)


def catalog_path(catalog: Path | None) -> Path:
    """The catalog a command works on (remembered for error messages)."""
    from faceclust.catalog import default_catalog_path

    path = catalog if catalog is not None else default_catalog_path()
    context = click.get_current_context(silent=True)
    if context is not None:
        context.meta[CATALOG_META] = path
    return path
