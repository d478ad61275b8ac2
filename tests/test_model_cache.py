"""Networks built from model files are cached between runs (faceclust.models.cache): read back
with weights_only, keyed by the file's hash, the build version and torch's version, rebuilt
when the entry is damaged, and never needed: a cache that cannot be written only costs time."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from faceclust.models import cache


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("FACECLUST_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights one")
    return path


def counting_builder(value: float):
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.full((3, 2), value), "n": torch.tensor([1, 2, 3])}
    return build, calls


def test_built_once_then_read_from_the_cache(source):
    build, calls = counting_builder(0.5)
    first = cache.cached_state("net", 1, source, build)
    second = cache.cached_state("net", 1, source, build)
    assert len(calls) == 1
    assert cache.cache_path("net", 1, source).is_file()
    assert set(second) == {"w", "n"} and torch.equal(first["w"], second["w"]) and torch.equal(first["n"], second["n"])


def test_a_new_model_file_build_version_or_torch_is_a_new_entry(source, monkeypatch):
    build, calls = counting_builder(1.0)
    cache.cached_state("net", 1, source, build)
    cache.cached_state("net", 2, source, build)  # a new way of building
    assert len(calls) == 2
    source.write_bytes(b"weights two")  # another file at the same path, the same size
    os.utime(source, ns=(1, 1))
    cache.cached_state("net", 1, source, build)
    assert len(calls) == 3
    monkeypatch.setattr(torch, "__version__", "9.9.9+other")
    cache.cached_state("net", 1, source, build)
    assert len(calls) == 4
    assert len(list(cache.cache_path("net", 1, source).parent.iterdir())) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "not tensors", "rejected", "one byte",
                                    "a pipe"])
def test_a_damaged_entry_is_built_again_and_replaced(source, damage):
    build, calls = counting_builder(2.0)
    cache.cached_state("net", 1, source, build)
    path = cache.cache_path("net", 1, source)
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(os.urandom(len(good)))
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not tensors":
        torch.save({"w": [1, 2, 3]}, path)
    elif damage == "one byte":  # still a valid file: only the check can tell
        state = torch.load(path, weights_only=True)
        state["w"][0, 0] = 2.5
        torch.save(state, path)
    elif damage == "a pipe":  # opening it for reading would block without a writer
        path.unlink()
        os.mkfifo(path)
    expect = (lambda state: "missing" in state) if damage == "rejected" else (lambda state: True)
    state = cache.cached_state("net", 1, source, build, expect)
    assert len(calls) == 2 and torch.equal(state["w"], torch.full((3, 2), 2.0))
    if damage != "rejected":
        assert path.is_file() and torch.load(path, weights_only=True)["w"].shape == (3, 2)
        cache.cached_state("net", 1, source, build)
        assert len(calls) == 2  # the replaced entry is read


def test_a_cache_that_cannot_be_written_only_costs_the_build(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("FACECLUST_CACHE", str(blocker))
    source = tmp_path / "model.bin"
    source.write_bytes(b"w")
    build, calls = counting_builder(3.0)
    for _ in range(2):
        assert torch.equal(cache.cached_state("net", 1, source, build)["w"], torch.full((3, 2), 3.0))
    assert len(calls) == 2


def test_sface_from_the_cache_computes_what_the_fresh_build_does(tmp_path, monkeypatch):
    from faceclust.models import sface

    try:
        path = sface.sface_path()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"SFace's model file is not installed: {exc}")
    monkeypatch.setenv("FACECLUST_CACHE", str(tmp_path))
    fresh = sface.load_sface(cache=False)
    built = sface.load_sface()  # builds and stores
    assert cache.cache_path("sface", sface._BUILD_VERSION, path).is_file()
    monkeypatch.setattr(sface, "parse_sface", lambda graph: pytest.fail("parsed again despite the cache"))
    cached = sface.load_sface()
    chips = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (3, 3, 112, 112)).astype(np.float32))
    with torch.inference_mode():
        reference = fresh(chips)
        assert torch.equal(built(chips), reference) and torch.equal(cached(chips), reference)
    assert reference.shape == (3, 128) and reference.abs().max() > 0
