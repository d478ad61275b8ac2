"""--threads and FACECLUST_THREADS: one thread count for torch, FAISS, the OpenMP pools and the
decode pool, defaulting to the cores the process may use."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import draw_photo

from faceclust import cpu
from faceclust.cli import main


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    import torch

    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", cpu.ENV):
        monkeypatch.delenv(name, raising=False)
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    yield
    monkeypatch.delenv(cpu.ENV, raising=False)
    cpu.set_threads(None)
    torch.set_num_threads(before)


def test_the_default_is_the_cores_this_process_may_use():
    assert cpu.threads() == len(os.sched_getaffinity(0))
    from faceclust.scan.options import ScanOptions

    assert ScanOptions().decode_workers == cpu.threads()


def test_threads_option_reaches_torch_faiss_the_pools_and_the_decode_pool(tmp_path):
    import faiss
    import torch

    draw_photo(tmp_path / "p" / "a.png", [(0, 40, 40, 60)])
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "p"), "--catalog", str(tmp_path / "c.sqlite"),
                                       "--detector", "fake", "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"
    from faceclust.scan.options import ScanOptions

    assert ScanOptions().decode_workers == 1


def test_the_environment_sets_it_and_a_bad_value_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(cpu.ENV, "3")
    assert cpu.threads() == 3
    monkeypatch.setenv(cpu.ENV, "many")
    draw_photo(tmp_path / "p" / "a.png", [(0, 40, 40, 60)])
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "p"), "--catalog", str(tmp_path / "c.sqlite"),
                                       "--detector", "fake", "--quiet"])
    assert result.exit_code == 2 and "FACECLUST_THREADS='many' is not a number of threads" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["cluster", "--threads", "0", "--catalog", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 2 and "--threads" in result.output


def test_a_worker_computes_alone_and_the_main_threads_count_comes_back():
    import threading

    import torch

    torch.set_num_threads(2)
    seen = []

    def worker():
        cpu.compute_alone_on_this_thread()
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [1] and torch.get_num_threads() == 2
    with cpu.side_by_side():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_a_worker_waits_for_torch_while_another_thread_is_still_importing_it():
    """sys.modules holds torch half-made while another thread imports it: a worker asking to
    compute alone waits for the import instead of failing (its photos were found again on the
    main thread)."""
    code = ("import sys, threading, time\n"
            "from faceclust.cpu import compute_alone_on_this_thread\n"
            "importer = threading.Thread(target=lambda: __import__('torch'))\n"
            "importer.start()\n"
            "while 'torch' not in sys.modules:\n"
            "    time.sleep(0.001)\n"
            "half_made = not hasattr(sys.modules['torch'], 'set_num_threads')\n"
            "compute_alone_on_this_thread()\n"
            "import torch\n"
            "print(half_made, torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    half_made, threads = out.stdout.split()
    assert threads == "1"
    assert half_made == "True"  # the case this is about was met


def test_onnxruntime_is_told_one_thread_where_a_worker_computes_alone(monkeypatch):
    """compute_threads(): what an onnxruntime session is created with on the calling thread:
    1 in a worker computing alone (even before torch is imported) and inside side_by_side,
    else the chosen count."""
    import threading

    monkeypatch.setattr(cpu, "_chosen", 3)
    seen = []

    def worker():
        seen.append(cpu.compute_threads())
        cpu.compute_alone_on_this_thread()
        seen.append(cpu.compute_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [3, 1] and cpu.compute_threads() == 3
    with cpu.side_by_side():
        assert cpu.compute_threads() == 1
    assert cpu.compute_threads() == 3


def test_short_gil_turns_last_as_long_as_the_block():
    import sys

    before = sys.getswitchinterval()
    with cpu.short_gil_turns():
        assert sys.getswitchinterval() == pytest.approx(cpu.GIL_TURN)
    assert sys.getswitchinterval() == before
    with pytest.raises(KeyError):
        with cpu.short_gil_turns():
            raise KeyError("stop")
    assert sys.getswitchinterval() == before
    # Two scans on two threads, the first to start ending first: short until the last ends.
    first, second = cpu.short_gil_turns(), cpu.short_gil_turns()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(cpu.GIL_TURN)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_a_scan_takes_short_gil_turns_while_it_finds_faces(tmp_path, monkeypatch):
    """The scan's workers run with short turns; the process has its own back afterwards."""
    import sys

    from faceclust.faces.detect import DetectOptions
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.prepare import PreparingMixin
    from faceclust.scan.scanner import scan_library

    seen = []
    original = PreparingMixin._prepare

    def spy(self, *args, **kwargs):
        seen.append(sys.getswitchinterval())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PreparingMixin, "_prepare", spy)
    for i in range(3):
        draw_photo(tmp_path / "p" / f"{i}.png", [(0, 40, 40, 60)])
    before = sys.getswitchinterval()
    scan_library(tmp_path / "c.sqlite", [tmp_path / "p"],
                 ScanOptions(detect=DetectOptions(detector="fake", min_face=20), embedder="fake"))
    assert seen and all(turn == pytest.approx(cpu.GIL_TURN) for turn in seen)
    assert sys.getswitchinterval() == before


def test_a_stopped_scan_gives_the_process_its_gil_turns_back(tmp_path, monkeypatch):
    """Ctrl-C in the middle of a scan: the interval is Python's again afterwards."""
    import sys

    from faceclust.faces.detect import DetectOptions
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import Scanner, scan_library

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Scanner, "_finish_batch", interrupted)
    for i in range(3):
        draw_photo(tmp_path / "p" / f"{i}.png", [(0, 40, 40, 60)])
    before = sys.getswitchinterval()
    with pytest.raises(KeyboardInterrupt):
        scan_library(tmp_path / "c.sqlite", [tmp_path / "p"],
                     ScanOptions(detect=DetectOptions(detector="fake", min_face=20), embedder="fake"))
    assert sys.getswitchinterval() == before
