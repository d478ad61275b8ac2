"""The real ``faceclust`` command line in its own process, with the fake detector and embedder
of ``conftest`` standing in for the models (for tests that kill, race or time a real process).

    python tests/fake_cli.py scan PHOTOS --catalog C.sqlite --detector fake

The fake embedder also stands in for the default embedder, as in ``test_cli``.

Two environment variables let tests reach exact moments of a real process:

* ``FAKE_CLI_KILL=WHAT:N`` kills the process with SIGKILL at the N-th (from 1) of: ``commit``
  (right after a catalog transaction commits; a new catalog's migrations come first), ``batch``
  (right after a scan batch is committed), ``clustering`` (inside the clustering run's
  transaction, before its commit), ``place`` (an album file made, before it is recorded),
  ``journal`` (right after an album journal line).
* ``FAKE_CLI_DELAY=SECONDS`` makes each fake detection take that long (a scan long enough for
  another process to meet it).
"""

from __future__ import annotations

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import FakeDetector, FakeEmbedder  # noqa: E402

from faceclust.cli import run  # noqa: E402
from faceclust.faces.detect import detectors  # noqa: E402
from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders  # noqa: E402


def install_fakes() -> None:
    delay = float(os.environ.get("FAKE_CLI_DELAY", "0"))

    class SlowDetector(FakeDetector):
        def detect(self, image, scale=1.0):
            time.sleep(delay)
            return super().detect(image, scale)

    detectors.register("fake")(SlowDetector if delay else FakeDetector)
    embedders.register("fake")(FakeEmbedder)
    embedders._factories[DEFAULT_EMBEDDER] = FakeEmbedder


def install_kill_point(spec: str) -> None:
    from faceclust import catalog
    from faceclust.catalog import sql
    from faceclust.output import albums

    what, _, n = spec.partition(":")
    left = [int(n or 1)]

    def count() -> None:
        left[0] -= 1
        if left[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    def after(cls, name):
        original = getattr(cls, name)

        def wrapped(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            count()
            return out

        setattr(cls, name, wrapped)

    if what == "commit":
        original_exit = sql.Transaction.__exit__

        def exit_then_count(self, exc_type, exc, tb):
            outer = self.outer and exc_type is None
            original_exit(self, exc_type, exc, tb)
            if outer:
                count()

        sql.Transaction.__exit__ = exit_then_count
    elif what == "batch":
        after(catalog.Catalog, "write_results")  # a scan batch, committed
    elif what == "clustering":
        after(catalog.Catalog, "write_clustering")  # still inside the recorded transaction
    elif what == "place":
        after(albums.AlbumWriter, "_place")
    elif what == "journal":
        after(albums.AlbumWriter, "_log")
    else:
        raise SystemExit(f"unknown FAKE_CLI_KILL point {spec!r}")


if __name__ == "__main__":
    install_fakes()
    if os.environ.get("FAKE_CLI_KILL"):
        install_kill_point(os.environ["FAKE_CLI_KILL"])
    run()  # as the installed program: ends with os._exit once the command is done
