"""Networks built from model files, kept between runs in the cache folder.

Rebuilding a network from its shipped file (parsing ONNX protobuf, dequantising, folding
batch norms) is work a one-shot command such as ``verify`` pays at every start. The result is a
flat dict of tensors, saved once under ``<cache>/models`` and read back with
``torch.load(weights_only=True)`` (no pickled code runs). The file name holds what the result
depends on: the kind and build version, the model file's SHA-256 and torch's version, so a
new model file, a new torch or a new way of building never reads an old entry. An entry that
cannot be read (truncated, damaged, wrong contents: a CRC-32 of every tensor's bytes is stored
with them and checked) is built again and replaced; only a regular file is read (a pipe named
like an entry cannot hang a command); a cache that cannot be written (read-only home) only
costs the rebuild.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zlib
from pathlib import Path
from typing import Callable

import torch

from faceclust.files import atomic_write, cache_dir
from faceclust.models.files import file_sha256

State = dict[str, torch.Tensor]


def cache_path(kind: str, version: int, source: Path) -> Path:
    torch_version = re.sub(r"[^0-9A-Za-z.]+", "_", torch.__version__)
    return cache_dir() / "models" / f"{kind}-v{version}-{file_sha256(source)[:32]}-torch{torch_version}.pt"


CHECK_KEY = "__crc32__"


def _crc(state: State) -> int:
    crc = 0
    for key in sorted(k for k in state if k != CHECK_KEY):
        crc = zlib.crc32(key.encode(), crc)
        crc = zlib.crc32(state[key].contiguous().numpy().tobytes(), crc)
    return crc


def _read_bytes(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb") as handle:
            fd = None
            return handle.read()
    except OSError:
        return None
    finally:
        if fd is not None:
            os.close(fd)


def _read(path: Path, expect: Callable[[State], bool]) -> State | None:
    data = _read_bytes(path)
    if data is None:
        return None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - damaged or foreign: built again and replaced
        return None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        return None
    check = state.pop(CHECK_KEY, None)
    if check is None or check.numel() != 1 or int(check) != _crc(state):
        return None
    return state if expect(state) else None


def cached_state(kind: str, version: int, source: Path, build: Callable[[], State],
                 expect: Callable[[State], bool] = lambda state: True) -> State:
    """The tensors ``build()`` makes from the model file ``source``: read from the cache when
    an entry for this file, build ``version`` and torch exists and ``expect`` accepts it,
    else built and stored (best effort)."""
    path = cache_path(kind, version, source)
    state = _read(path, expect)
    if state is not None:
        return state
    state = build()
    try:
        buffer = io.BytesIO()
        torch.save({**state, CHECK_KEY: torch.tensor(_crc(state), dtype=torch.int64)}, buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buffer.getvalue())
    except OSError:
        pass  # a cache that cannot be written: built again next time
    return state
