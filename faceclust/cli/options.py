"""Options and helpers shared by every command module of ``faceclust.cli``.

Kept apart so the command modules import them without importing each other.
"""

from __future__ import annotations

from pathlib import Path

import click


class LibraryDefaultOption(click.Option):
    """An option whose default is the library's: the option itself defaults to None (dropped,
    so the library decides) and ``show_default="40"`` shows that value as click shows any
    default (``[default: 40]``, not click's ``(40)`` for descriptions)."""

    def get_help_extra(self, ctx):
        extra = super().get_help_extra(ctx)
        if isinstance(self.show_default, str) and "default" in extra:
            extra["default"] = self.show_default
        return extra


def option(*names, **attrs):
    """``click.option`` with :class:`LibraryDefaultOption`."""
    attrs.setdefault("cls", LibraryDefaultOption)
    return click.option(*names, **attrs)


catalog_option = click.option(
    "--catalog", type=click.Path(dir_okay=False, path_type=Path), default=None,
    envvar="FACECLUST_CATALOG", show_envvar=True,
    help="The catalog file (SQLite). Default: ~/.local/share/faceclust/catalog.sqlite.")
json_option = option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")


def _set_threads(ctx, param, value):
    from faceclust.cpu import set_threads

    set_threads(value)
    return value


threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, expose_value=False, is_eager=True,
    callback=_set_threads, show_default="$FACECLUST_THREADS, else the cores this process may use",
    help="CPU threads for torch, FAISS, the numeric libraries and photo decoding.")
quiet_option = option("--quiet", "-q", is_flag=True, help="No progress and no summary table.")


def apply_options(command, options: list):
    """Decorate ``command`` with ``options`` in the order they are listed."""
    for option in reversed(options):
        command = option(command)
    return command


class Registered(click.ParamType):
    """A name from one of the library's registries (detectors, clusterers...), checked when the
    command runs: the registry is imported then, so ``--help`` stays light. ``shown`` are the
    names the help lists (the library's own; tests may register more)."""

    name = "name"

    def __init__(self, registry: str, shown: tuple[str, ...]) -> None:
        self.registry = registry  # "module:attribute"
        self.shown = shown

    def get_metavar(self, param, ctx=None) -> str:
        return f"[{'|'.join(self.shown)}]"

    def convert(self, value, param, ctx):
        import importlib

        module, attr = self.registry.split(":")
        registry = getattr(importlib.import_module(module), attr)
        if value in registry:
            return value
        self.fail(f"{value!r} is not one of: {', '.join(registry.names())}", param, ctx)


class Finite(click.FloatRange):
    """A float range that also refuses NaN and infinity (click's FloatRange lets ``nan`` through:
    every comparison with it is false)."""

    name = "float"

    def convert(self, value, param, ctx):
        import math

        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


# Shown defaults are the library's (a test checks they agree); the options themselves default
# to None, so the library's value is the one used.
DETECT_OPTIONS = [
    option("--detector", type=Registered("faceclust.faces.detect:detectors", ("mmod", "yunet", "hog")),
                 default=None, show_default="yunet",
                 help="Face detector: yunet (OpenCV Zoo's YuNet: any angle, fast, gives the points "
                      "SFace is aligned by), mmod (dlib's CNN, any angle; the former default) or "
                      "hog (frontal only)."),
    option("--min-face", type=click.IntRange(min=8), default=None, show_default="30",
                 help="Smallest face wanted, in pixels of the photo."),
]


def detect_options(command):
    """How faces are found in photos: the detector and the smallest face wanted."""
    return apply_options(command, DETECT_OPTIONS)


def given(**options) -> dict:
    """The options the user gave: None means 'the library's default'."""
    return {k: v for k, v in options.items() if v is not None}


CATALOG_META = "faceclust.catalog"
ALBUM_MODES = ("symlink", "hardlink", "copy")  # as faceclust.output.albums.MODES (not imported: --help stays light)


def catalog_path(catalog: Path | None) -> Path:
    """The catalog a command works on (remembered for error messages)."""
    from faceclust import locks
    from faceclust.catalog import default_catalog_path
    from faceclust.errors import UsageProblem

    path = catalog if catalog is not None else default_catalog_path()
    if not str(path).strip() or Path(path) == Path("."):
        raise UsageProblem("--catalog needs a file name (or leave it out for the default catalog)")
    context = click.get_current_context(silent=True)
    if context is not None:
        context.meta[CATALOG_META] = path
        # Who holds a lock, as a second run sees it: "waiting for ... (pid N, faceclust scan)".
        locks.current_command = f"faceclust {context.info_name}"
    return path
