"""The command line: thin click commands over the library.

Each command makes one library call. Options default to None and are dropped, so every default
lives once, in the library. Library errors (FaceclustError) become one-line messages and exit
codes here (``errors``), and only here. Heavy modules (torch, faiss, numpy) are imported inside
commands: ``--help`` stays instant.

One module per command family: ``scan`` (scan, run, status, backup), ``people`` (cluster,
people, name, merge, move, reject, hide, history, undo), ``output`` (albums, report, export),
``find`` (verify, search, dedupe, calibrate), ``train``, ``evaluate``; ``options`` holds the
shared options, ``show`` what several commands print alike, ``progress`` the live display.
A new command is one function in one of them, added to that module's ``COMMANDS``.
"""

from __future__ import annotations

import os
import sys

import click

from faceclust import __version__
from faceclust.cli.errors import EXIT_CODES_HELP, translate
from faceclust.cli.options import CATALOG_META
from faceclust.text import printable

COMMAND_MODULES = ("scan", "people", "output", "find", "serve", "train", "evaluate")


class _Group(click.Group):
    def invoke(self, ctx):
        from faceclust import locks

        locks.on_wait = lambda message: click.echo(printable(message), err=True)
        _stop_cleanly_on_sigterm()
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (``faceclust people | head -1``): stop quietly, as 'ls' does.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(141) from None
        except BaseException as exc:  # noqa: BLE001 - every error a user can cause is one line
            translated = translate(exc, ctx.meta.get(CATALOG_META))
            if translated is None:
                raise
            raise translated from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="faceclust")
def main() -> None:
    """Turn a photo library into albums grouped by person.

    Everything runs offline on the CPU with pretrained face models (OpenCV Zoo's YuNet, run
    by onnxruntime; SFace and dlib's ResNet, rebuilt in torch). Originals are only ever read.
    """
    import os
    import warnings

    from faceclust.memory import keep_freed_memory

    keep_freed_memory()
    if not os.environ.get("FACECLUST_DEBUG"):
        # Libraries' warnings (Pillow on odd EXIF tags, torch on deprecations) name source files
        # and lines: Python internals, not something a user can act on. Problems a user can act
        # on are reported by faceclust itself.
        warnings.simplefilter("ignore")


def _stop_cleanly_on_sigterm() -> None:
    """A batch job stopped with SIGTERM ends like Ctrl-C: the run is recorded as interrupted
    (committed batches are kept either way)."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run() -> None:
    """The ``faceclust`` program: :func:`main`, then the end of the process without the
    interpreter's teardown, which costs every command 0.4 s once torch is imported
    (its libraries' destructors; ``benchmarks/bench_startup.py``)."""
    try:
        main(prog_name="faceclust")
    except SystemExit as exc:  # click always ends with one
        exit_now(exc.code)
    exit_now(0)


def exit_now(code: int | str | None) -> None:
    """End the process with ``code`` as Python would (other threads waited for, exit handlers
    run, output flushed) but without tearing the interpreter down."""
    import atexit
    import threading

    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        wait_for_threads = getattr(threading, "_shutdown", None)  # what Python does first at exit
        if wait_for_threads is not None:
            wait_for_threads()
        atexit._run_exitfuncs()
    except KeyboardInterrupt:  # Ctrl-C while waiting: end now, as an interrupted command
        code = 130
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            code = code or 141  # the reader went away, as in _Group.invoke
        except (OSError, ValueError):  # closed or failing: nothing left to say there
            pass
    os._exit(code)


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        for command in importlib.import_module(f"faceclust.cli.{name}").COMMANDS:
            main.add_command(command)


_register_commands()
