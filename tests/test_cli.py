"""The command line, driven through click's CliRunner with the fake models."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import draw_photo

from faceclust.cli import main

FAKE = ["--detector", "fake", "--min-face", "20"]


@pytest.fixture(autouse=True)
def fake_default_embedder(monkeypatch):
    """The CLI embeds with the default embedder: the fake one stands in for it here."""
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])


@pytest.fixture
def lib(tmp_path):
    root = tmp_path / "photos"
    draw_photo(root / "a.png", [(0, 10, 10, 40)])
    draw_photo(root / "b.png", [(1, 10, 10, 40), (2, 100, 100, 60)])
    draw_photo(root / "c.png", [])
    (root / "broken.jpg").write_bytes(b"garbage")
    return root


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def test_every_command_has_help():
    for name, command in main.commands.items():
        assert command.help and len(command.help.strip()) > 20, f"'{name}' has no help text"
        result = run(name, "--help")
        assert result.exit_code == 0 and "Usage" in result.output


def test_help_imports_neither_torch_nor_faiss():
    code = ("import sys; from click.testing import CliRunner; from faceclust.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('torch', 'faiss', 'dlib', 'numpy', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_scan_json_summary_and_exit_code_with_per_file_errors(tmp_path, lib):
    result = run("scan", lib, "--catalog", tmp_path / "c.sqlite", *FAKE, "--json")
    assert result.exit_code == 3, result.output  # finished, but a file could not be read
    summary = json.loads(result.stdout)
    assert summary["photos_seen"] == 4 and summary["errors"] == 1
    assert summary["faces_found"] == 3 and summary["photos_with_faces"] == 2
    assert summary["error_samples"][0][0].endswith("broken.jpg")


def test_status_and_export(tmp_path, lib):
    cat = tmp_path / "c.sqlite"
    assert run("scan", lib, "--catalog", cat, *FAKE, "--quiet").exit_code == 3
    status = json.loads(run("status", "--catalog", cat, "--json").stdout)
    assert status["photos"] == 3 and status["faces"] == 3 and status["photos_with_errors"] == 1

    result = run("export", "--catalog", cat, "--embeddings", tmp_path / "e.npy")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["photo"].rsplit("/", 1)[1] for r in rows] == ["a.png", "b.png", "b.png"]
    assert list(rows[0]) == ["photo", "face_id", "left", "top", "right", "bottom", "score", "person", "taken_at"]
    assert (float(rows[0]["left"]), float(rows[0]["right"])) == (10.0, 50.0)
    from datetime import datetime

    taken = datetime.fromisoformat(rows[0]["taken_at"])  # no EXIF in these PNGs: the file's time
    assert abs(taken.timestamp() - os.stat(lib / "a.png").st_mtime) < 1.5
    assert all(r["person"] == "" for r in rows)
    vectors = np.load(tmp_path / "e.npy")
    assert vectors.shape == (3, 8) and not np.isnan(vectors).any()

    out = tmp_path / "faces.jsonl"
    run("export", "--catalog", cat, "--format", "jsonl", "-o", out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["face_id"] for line in lines] == [int(r["face_id"]) for r in rows]


def test_status_says_when_a_catalog_is_not_on_the_default_descriptor(tmp_path, lib):
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import ModelChoice, record_model

    cat = tmp_path / "c.sqlite"
    run("scan", lib, "--catalog", cat, *FAKE, "--quiet")
    shown = run("status", "--catalog", cat).output
    assert "--model default" not in shown and "dlib ResNet + 0.5 SFace (the default)" in shown  # no note
    with Catalog(cat) as catalog:  # a catalog last scanned with dlib's descriptor alone
        record_model(catalog, ModelChoice("dlib-resnet", None, "dlib-resnet:0123456789abcdef"))
    status = run("status", "--catalog", cat)
    assert "uses the dlib-resnet descriptor" in status.output and "--model default" in status.output
    assert "dlib ResNet alone" in status.output
    shown = json.loads(run("status", "--catalog", cat, "--json").stdout)["model"]
    assert shown["embedder"] == "dlib-resnet" and shown["is_default"] is False


def test_catalog_from_environment(tmp_path, lib, monkeypatch):
    cat = tmp_path / "env.sqlite"
    result = run("scan", lib, *FAKE, "--quiet", env={"FACECLUST_CATALOG": str(cat)})
    assert result.exit_code == 3 and cat.exists()


def test_status_of_a_missing_catalog_says_what_to_do(tmp_path):
    result = run("status", "--catalog", tmp_path / "none.sqlite")
    assert result.exit_code == 2
    assert "faceclust scan" in result.output


def test_bad_option_values_are_usage_errors(tmp_path, lib):
    result = run("scan", lib, "--catalog", tmp_path / "c.sqlite", "--min-face", "2")
    assert result.exit_code == 2 and "--min-face" in result.output and "x>=8" in result.output
    result = run("scan", lib, "--catalog", tmp_path / "c.sqlite", "--detector", "nope")
    assert result.exit_code == 2 and "'nope' is not one of" in result.output and "mmod" in result.output
    assert not (tmp_path / "c.sqlite").exists()  # refused before any work


def test_plain_progress_lines_when_not_a_tty(tmp_path, lib):
    result = CliRunner().invoke(main, ["scan", str(lib), "--catalog", str(tmp_path / "c.sqlite"), *FAKE])
    assert result.exit_code == 3
    assert "scan: 4/4 photos, 3 faces, 1 errors" in result.stderr
    assert "photos seen" in result.stdout


def test_cli_reference_is_generated_from_help():
    import importlib.util
    from pathlib import Path

    gen = Path(__file__).resolve().parent.parent / "docs" / "gen_cli.py"
    spec = importlib.util.spec_from_file_location("gen_cli", gen)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OUT.read_text() == module.render(), "docs/cli.md is stale: run python docs/gen_cli.py"


def test_run_scans_clusters_and_writes_albums_and_report(tmp_path):
    for i in range(3):
        draw_photo(tmp_path / "photos" / f"red{i}.png", [(0, 10 + i, 10, 40)])
        draw_photo(tmp_path / "photos" / f"blue{i}.png", [(2, 100, 50 + i, 60)])
    out = tmp_path / "albums"
    result = run("run", tmp_path / "photos", "--out", out, "--catalog", tmp_path / "c.sqlite", *FAKE, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["scan"]["faces_found"] == 6 and summary["cluster"]["people"] == 2
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2
    assert {frozenset(f.name[:3] for f in (out / d).iterdir()) for d in folders} == {frozenset({"red"}), frozenset({"blu"})}
    assert (out / "faceclust-report.html").exists()


def test_evaluate_scores_people_against_identity_folders(tmp_path):
    for i in range(3):
        draw_photo(tmp_path / "labelled" / "red_person" / f"r{i}.png", [(0, 10 + i, 10, 40)])
        # A bystander (blue) in some photos of the green person: clustered, not scored.
        faces = [(1, 100, 50 + i, 60)] + ([(2, 10, 10, 30)] if i else [])
        draw_photo(tmp_path / "labelled" / "green_person" / f"g{i}.png", faces)
    cat = tmp_path / "c.sqlite"
    assert run("scan", tmp_path / "labelled", "--catalog", cat, *FAKE, "--quiet").exit_code == 0
    assert run("cluster", "--catalog", cat, "--quiet").exit_code == 0
    result = json.loads(run("evaluate", tmp_path / "labelled", "--catalog", cat, "--json").stdout)
    assert result["bcubed_f1"] == 1.0 and result["pairwise_precision"] == 1.0
    assert result["people"] == result["identities"] == 2
    assert result["scored_faces"] == 6 and result["bystander_faces"] == 2
    assert result["labelled_photos_without_face"] == 0
    # Merging the two people is wrong: the scores must say so.
    people = json.loads(run("people", "--catalog", cat, "--json").stdout)  # biggest first
    ids = [str(p["id"]) for p in people[:2]]  # red and green (blue shares photos with green)
    assert run("merge", *ids, "--catalog", cat).exit_code == 0
    worse = json.loads(run("evaluate", tmp_path / "labelled", "--catalog", cat, "--json").stdout)
    assert worse["pairwise_precision"] < 0.6 and worse["people"] == 1


def test_albums_inside_the_photo_folder_are_not_scanned_again(tmp_path):
    photos = tmp_path / "photos"
    for i in range(3):
        draw_photo(photos / f"red{i}.png", [(0, 10 + i, 10, 40)])
    args = ("run", photos, "--out", photos / "albums", "--catalog", tmp_path / "c.sqlite", *FAKE, "--json")
    first = json.loads(run(*args).stdout)
    second = json.loads(run(*args).stdout)
    assert first["scan"]["photos_seen"] == second["scan"]["photos_seen"] == 3
    assert second["scan"]["copied"] == 0 and second["albums"]["added"] == 0
    assert len(list((photos / "albums").rglob("*.png"))) == 3


def test_the_program_ends_as_python_would_without_its_teardown():
    """``faceclust`` ends with os._exit (torch's teardown costs every command half a second),
    after what Python does at exit: other threads waited for, exit handlers run, buffered
    output flushed, the exit code kept."""
    code = ("import atexit, sys, threading, time\n"
            "from faceclust.cli import exit_now\n"
            "threading.Thread(target=lambda: (time.sleep(0.3), sys.stdout.write('thread done\\n'))).start()\n"
            "atexit.register(lambda: sys.stdout.write('exit handler ran\\n'))\n"
            "sys.stdout.write('buffered line\\n')\n"
            "exit_now(3)\n"
            "sys.stdout.write('never\\n')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3
    assert out.stdout.splitlines() == ["buffered line", "thread done", "exit handler ran"]
    out = subprocess.run([sys.executable, "-c", "from faceclust.cli import exit_now; exit_now('stopped: reason')"],
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (1, "stopped: reason\n")


def test_the_installed_program_runs_a_command_and_keeps_its_exit_code(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "faceclust", "--version"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("faceclust")
    missing = subprocess.run([sys.executable, "-m", "faceclust", "status", "--catalog", str(tmp_path / "none.sqlite")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "none.sqlite" in missing.stderr and "Traceback" not in missing.stderr
