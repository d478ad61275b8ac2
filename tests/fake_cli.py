"""The real ``faceclust`` command line in its own process, with the fake detector and embedder
of ``conftest`` standing in for the models (for tests that kill, race or time a real process).

    python tests/fake_cli.py scan PHOTOS --catalog C.sqlite --detector fake

The fake embedder also stands in for the default embedder, as in ``test_cli``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conftest import FakeDetector, FakeEmbedder  # noqa: E402

from faceclust.cli import main  # noqa: E402
from faceclust.detect import detectors  # noqa: E402
from faceclust.embed import DEFAULT_EMBEDDER, embedders  # noqa: E402


def install_fakes() -> None:
    detectors.register("fake")(FakeDetector)
    embedders.register("fake")(FakeEmbedder)
    embedders._factories[DEFAULT_EMBEDDER] = FakeEmbedder


if __name__ == "__main__":
    install_fakes()
    main(prog_name="faceclust")
