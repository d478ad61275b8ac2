"""Trust at the command line: exit codes, one-line errors, options checked up front, output a
terminal can show safely, photo folders that vanish, file names that are not UTF-8."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import draw_photo

from faceclust.cli import main

FAKE = ["--detector", "fake", "--min-face", "20"]
FAKE_CLI = Path(__file__).resolve().parent / "fake_cli.py"


@pytest.fixture(autouse=True)
def fake_default_embedder(monkeypatch):
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders

    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])


def run(*args, env=None):
    return CliRunner().invoke(main, [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in args],
                              env=env, catch_exceptions=False)


def two_people(root: Path, n: int = 3) -> Path:
    for i in range(n):
        draw_photo(root / f"red{i}.png", [(0, 10 + i, 10, 40)])
        draw_photo(root / f"blue{i}.png", [(2, 100, 50 + i, 60)])
    return root


def one_error_line(result) -> str:
    """The command failed with exactly one line on stderr, and no traceback anywhere."""
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# -- options ------------------------------------------------------------------------------------


def test_shown_defaults_are_the_librarys():
    """Defaults live in the library; the help shows them with click's show_default. Each shown
    default must be what the library really uses."""
    from faceclust.faces.detect import DetectOptions
    from faceclust.find import calibration as verify
    from faceclust.find import search
    from faceclust.people import cluster
    from faceclust.scan.options import ScanOptions
    from faceclust.train.trainer import TrainOptions

    detect, scan_options, train = DetectOptions(), ScanOptions(), TrainOptions()
    expected = {
        ("scan", "detector"): detect.detector, ("scan", "min_face"): detect.min_face,
        ("scan", "max_side"): detect.max_side, ("scan", "min_score"): detect.min_score,
        ("scan", "precision"): detect.precision, ("scan", "batch_photos"): scan_options.batch_photos,
        ("scan", "stall_seconds"): scan_options.stall_seconds,
        ("cluster", "min_faces"): cluster.DEFAULT_MIN_FACES,
        ("cluster", "min_face_size"): 0.0,
        ("search", "top"): search.DEFAULT_TOP, ("verify", "prior"): 0.5,
        ("calibrate", "features"): verify.DEFAULT_FEATURES, ("calibrate", "max_negatives"): verify.DEFAULT_MAX_NEGATIVES,
        **{("train", name): getattr(train, name) for name in (
            "epochs", "k", "margin", "mining", "lr", "schedule", "weight_decay", "freeze", "distill",
            "optimizer", "patience", "seed")},
    }
    from faceclust.train.data import MAX_FACES_PER_PERSON
    from faceclust.train.trainer import DEFAULT_EXTRAS

    expected[("train", "max_faces_per_person")] = MAX_FACES_PER_PERSON
    expected[("train", "extras")] = DEFAULT_EXTRAS
    shown = {}
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(getattr(param, "show_default", None), str):
                shown[(name, param.name)] = param.show_default
    assert set(expected) <= set(shown)
    for key, value in expected.items():
        text = shown[key]
        assert (float(text) == float(value)) if isinstance(value, (int, float)) else text == value, key
    # Defaults that depend on the catalog's model name the value for each model.
    from faceclust.faces.embed import DLIB_DISTANCES
    from faceclust.faces.fused import FUSED_DISTANCES

    per_model = {("cluster", "method"): "cluster_method", ("search", "threshold"): "same_person",
                 ("verify", "threshold"): "same_person", ("dedupe", "face_distance"): "duplicate"}
    for key, field in per_model.items():
        fused, dlib = (getattr(d, field) for d in (FUSED_DISTANCES, DLIB_DISTANCES))
        fused, dlib = (f"{v:g}" if isinstance(v, float) else v for v in (fused, dlib))
        assert f"{fused} for the fused descriptor" in shown[key] and f"{dlib} for dlib's" in shown[key], key
    assert import_check_passes()


def import_check_passes() -> bool:
    code = ("import sys; from click.testing import CliRunner; from faceclust.cli import main; "
            "r = CliRunner().invoke(main, ['cluster', '--help']); assert r.exit_code == 0, r.output; "
            "assert 'adaptive' in r.output; "
            "print(sorted(m for m in ('torch', 'faiss', 'numpy', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "[]"


def test_cluster_options_are_checked_even_when_nothing_would_be_clustered(tmp_path):
    cat = tmp_path / "c.sqlite"
    assert run("scan", two_people(tmp_path / "p"), "--catalog", cat, *FAKE, "--quiet").exit_code == 0
    assert run("cluster", "--catalog", cat, "--quiet").exit_code == 0
    nope = run("cluster", "--catalog", cat, "--method", "nope")  # incremental: nothing new to cluster
    assert nope.exit_code == 2 and "'nope' is not one of" in nope.output and "agglomerative" in nope.output
    far = run("cluster", "--catalog", cat, "--threshold", "5", "--full")
    assert far.exit_code == 2 and "--threshold" in far.output


# -- photo folders that are missing or vanished -------------------------------------------------


def test_a_missing_photo_folder_is_a_usage_error_and_nothing_is_written(tmp_path):
    result = run("run", tmp_path / "phtos", "--out", tmp_path / "albums", "--catalog", tmp_path / "c.sqlite", *FAKE)
    assert result.exit_code == 2
    assert "phtos: no such file or folder" in one_error_line(result)
    assert not (tmp_path / "albums").exists() and not (tmp_path / "c.sqlite").exists()


def test_an_emptied_photo_folder_keeps_its_people_and_albums_unless_pruned(tmp_path):
    photos, out, cat = two_people(tmp_path / "photos", 4), tmp_path / "albums", tmp_path / "c.sqlite"
    assert run("run", photos, "--out", out, "--catalog", cat, *FAKE, "--quiet").exit_code == 0
    albums = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert len(albums) == 8
    photos.rename(tmp_path / "elsewhere")  # an unmounted share leaves an empty mount point
    photos.mkdir()
    kept = run("run", photos, "--out", out, "--catalog", cat, *FAKE, "--quiet")
    assert kept.exit_code == 3
    assert "8 of the 8 catalogued photos under" in kept.stderr and "--prune" in kept.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == albums
    status = json.loads(run("status", "--catalog", cat, "--json").output)
    assert status["photos"] == 8 and status["people"] == 2
    pruned = run("run", photos, "--out", out, "--catalog", cat, *FAKE, "--quiet", "--prune")
    assert pruned.exit_code == 0 and not list(out.rglob("*.png"))


def test_a_few_deleted_photos_are_pruned_without_asking(tmp_path):
    photos, cat = two_people(tmp_path / "photos", 4), tmp_path / "c.sqlite"
    assert run("scan", photos, "--catalog", cat, *FAKE, "--quiet").exit_code == 0
    for name in ("red0.png", "red1.png", "blue0.png"):
        (photos / name).unlink()
    result = json.loads(run("scan", photos, "--catalog", cat, *FAKE, "--json").output)
    assert result["gone"] == 3 and result["kept_missing"] == 0


# -- names that are not UTF-8 -------------------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_catalogued_exported_and_shown_safely(tmp_path):
    photos = two_people(tmp_path / "photos")
    latin1 = os.fsencode(photos) + b"/caf\xe9.png"
    with open(os.fsencode(photos / "red0.png"), "rb") as src, open(latin1, "wb") as dst:
        dst.write(src.read())
    (Path(os.fsdecode(os.fsencode(photos) + b"/bad\xff.jpg"))).write_bytes(b"not a photo")
    cat, out = tmp_path / "c.sqlite", tmp_path / "albums"
    result = run("run", photos, "--out", out, "--catalog", cat, *FAKE, "--json")
    assert result.exit_code == 3, result.output  # bad\xff.jpg is not a photo; everything else went in
    summary = json.loads(result.stdout)
    assert summary["scan"]["photos_seen"] == 8 and summary["scan"]["faces_found"] == 7
    assert "bad\\xff.jpg" in result.stderr and "\udcff" not in result.stderr  # escaped, not raw
    run("export", "--catalog", cat, "-o", tmp_path / "faces.csv")
    assert latin1 in (tmp_path / "faces.csv").read_bytes()  # the name byte for byte
    folders = [os.fsencode(p) for p in out.iterdir() if p.is_dir()]
    assert any(os.path.exists(f + b"/caf\xe9.png") for f in folders)
    again = json.loads(run("scan", photos, "--catalog", cat, *FAKE, "--json").output)
    assert again["unchanged"] == 7 and again["new"] == 0 and again["errors"] == 0


# -- exit codes and what reaches stderr ---------------------------------------------------------


def test_per_file_errors_reach_stderr_even_when_quiet_and_are_not_reported_twice(tmp_path):
    photos, cat = two_people(tmp_path / "photos"), tmp_path / "c.sqlite"
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    first = run("scan", photos, "--catalog", cat, *FAKE, "--quiet")
    assert first.exit_code == 3 and first.stdout == ""
    assert "1 file could not be read" in first.stderr and "broken.jpg" in first.stderr
    second = run("scan", photos, "--catalog", cat, *FAKE, "--json")
    summary = json.loads(second.stdout)
    assert second.exit_code == 0 and second.stderr == ""
    assert summary["errors"] == 0 and summary["known_errors"] == 1
    status = json.loads(run("status", "--catalog", cat, "--json").output)
    assert [e["path"].rsplit("/", 1)[1] for e in status["files_with_errors"]] == ["broken.jpg"]
    (photos / "broken.jpg").write_bytes(b"still not a photo, but changed")
    assert run("scan", photos, "--catalog", cat, *FAKE, "--quiet").exit_code == 3  # a new failure


def test_ctrl_c_exits_130_and_says_progress_is_saved(tmp_path, monkeypatch):
    from faceclust.scan import scanner as pipeline

    def interrupted(self, todo, states, seen):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline.Scanner, "_process", interrupted)
    result = run("scan", two_people(tmp_path / "p"), "--catalog", tmp_path / "c.sqlite", *FAKE, "--quiet")
    assert result.exit_code == 130
    assert result.stderr.strip() == "stopped; progress saved, run again to continue"


def test_exit_codes_are_in_the_help():
    text = " ".join(run("--help").output.split())
    for words in ("0 all good", "1 the run failed", "2 usage error", "3 finished, but some files", "130 stopped"):
        assert words in text


@pytest.fixture
def scanned(tmp_path):
    cat = tmp_path / "c.sqlite"
    assert run("scan", two_people(tmp_path / "photos"), "--catalog", cat, *FAKE, "--quiet").exit_code == 0
    assert run("cluster", "--catalog", cat, "--quiet").exit_code == 0
    return cat


@pytest.mark.parametrize("args, named, reason", [
    (["report", "{tmp}/missing/dir/r.html"], "missing/dir", "no such file or folder"),
    (["export", "-o", "{tmp}/missing/x.csv"], "missing", "no such file or folder"),
    (["albums", "/proc/nope"], "/proc/nope", ""),
    (["backup", "{tmp}/missing/b.sqlite"], "missing", "no such file or folder"),
])
def test_outputs_that_cannot_be_written_are_one_line(scanned, tmp_path, args, named, reason):
    result = run(*[a.format(tmp=tmp_path) for a in args], "--catalog", scanned)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert named in line and reason in line


def test_verify_says_which_file_is_not_a_photo(tmp_path):
    photo = draw_photo(tmp_path / "a.jpg", [(0, 10, 10, 40)])
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list")
    result = run("verify", photo, notes, *FAKE)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "notes.txt" in line and "a.jpg" not in line and "not an image" in line


def test_a_file_that_is_not_a_catalog_is_one_line(tmp_path):
    fake = tmp_path / "c.sqlite"
    fake.write_text("not a database, just text " * 100)
    result = run("status", "--catalog", fake)
    assert result.exit_code == 1 and "is not a faceclust catalog" in one_error_line(result)


def test_a_full_disk_is_one_line_and_the_catalog_stays_usable(scanned, tmp_path, monkeypatch):
    from faceclust.catalog import Catalog

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    draw_photo(tmp_path / "photos" / "new.png", [(1, 30, 30, 40)])
    monkeypatch.setattr(Catalog, "write_results", full)
    result = run("scan", tmp_path / "photos", "--catalog", scanned, *FAKE, "--quiet")
    assert result.exit_code == 1 and "is full; free some space and run again" in one_error_line(result)
    monkeypatch.undo()
    fake_default = CliRunner()  # the autouse fixture's patch was undone with the others: reapply
    from faceclust.faces.embed import DEFAULT_EMBEDDER, embedders
    monkeypatch.setitem(embedders._factories, DEFAULT_EMBEDDER, embedders._factories["fake"])
    again = fake_default.invoke(main, ["scan", str(tmp_path / "photos"), "--catalog", str(scanned), *FAKE, "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["new"] == 1


def test_a_busy_catalog_waits_says_for_whom_then_fails_with_one_line(scanned, monkeypatch):
    from faceclust import locks

    monkeypatch.setenv("FACECLUST_LOCK_WAIT", "0.5")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from faceclust import locks; locks.current_command = 'faceclust cluster'; "
        f"lock = locks.catalog_lock({str(scanned)!r}, 'people'); lock.__enter__(); print('held', flush=True); "
        "time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run("name", "1", "Ann", "--catalog", scanned)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1
    assert f"waiting for another faceclust run on the people of the catalog {scanned} (pid {holder.pid}, faceclust cluster)" \
        in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: the people of the catalog")
    assert "busy" in result.stderr and "Traceback" not in result.output
    assert locks.FileLock._held == {}
    assert run("name", "1", "Ann", "--catalog", scanned).exit_code == 0  # the holder is gone: no stale lock


# -- what reaches a terminal, a folder listing --------------------------------------------------


def test_names_with_control_and_bidi_characters_are_shown_escaped_and_kept_out_of_folder_names(scanned, tmp_path):
    evil = "\x1b[2J\x1b[31mEve\u202egnp.exe"
    named = run("name", "1", evil, "--catalog", scanned)
    assert named.exit_code == 0 and "\x1b" not in named.output and "\\x1b[2J" in named.output
    listed = run("people", "--catalog", scanned)
    assert "\x1b" not in listed.output and "\u202e" not in listed.output and "\\u202e" in listed.output
    out = tmp_path / "albums"
    assert run("albums", out, "--catalog", scanned).exit_code == 0
    folders = [p.name for p in out.iterdir() if p.is_dir()]
    assert any("Eve" in f for f in folders)
    assert all("\x1b" not in f and "\u202e" not in f for f in folders)
    from faceclust.catalog import Catalog
    with Catalog(scanned) as cat:
        assert cat.person(1)["name"] == evil  # kept exactly in the catalog


def test_status_counts_people(scanned):
    status = json.loads(run("status", "--catalog", scanned, "--json").output)
    assert status["people"] == 2 and status["named_people"] == 0
    assert status["last_run"]["started_at"][10] == "T"
    assert "people" in run("status", "--catalog", scanned).output


def test_heic_photos_work_in_dedupe_as_in_scan(tmp_path):
    """The HEIF opener is registered for every command, not only by scan: dedupe runs in its
    own process here, where no scan registered it first."""
    pytest.importorskip("pillow_heif", reason="the heif extra is not installed")
    from PIL import Image

    code = ("import pillow_heif, sys; pillow_heif.register_heif_opener(); from PIL import Image; "
            "im = Image.open(sys.argv[1]); im.save(sys.argv[2], format='HEIF', quality=90); "
            "im.save(sys.argv[3], format='HEIF', quality=60)")
    photos = tmp_path / "photos"
    source = draw_photo(tmp_path / "source.png", [(0, 100, 60, 70)], size=(320, 240))
    photos.mkdir()
    with Image.open(source) as im:
        assert im.size == (320, 240)
    subprocess.run([sys.executable, "-c", code, source, photos / "a.heic", photos / "b.heic"], check=True)
    draw_photo(photos / "other.png", [(0, 10, 10, 60)], size=(240, 320))
    cat = tmp_path / "c.sqlite"
    base = [sys.executable, str(FAKE_CLI)]
    scan = subprocess.run(base + ["scan", photos, "--catalog", cat, *FAKE, "--quiet"], capture_output=True, text=True)
    assert scan.returncode == 0, scan.stderr
    dedupe = subprocess.run(base + ["dedupe", "--catalog", cat, "--json"], capture_output=True, text=True)
    assert dedupe.returncode == 0, dedupe.stderr
    groups = json.loads(dedupe.stdout)["photo_groups"]
    assert [sorted(Path(p).name for p in g["photos"]) for g in groups] == [["a.heic", "b.heic"]]


def test_albums_never_go_into_the_photo_folder_itself(tmp_path):
    photos, cat = two_people(tmp_path / "photos"), tmp_path / "c.sqlite"
    for out in (photos, tmp_path):  # the photo folder, or a folder holding it
        result = run("run", photos, "--out", out, "--catalog", cat, *FAKE)
        line = one_error_line(result)
        assert result.exit_code == 2 and "outside the photo folders" in line and f"photo folder {photos}" in line
    assert not (photos / ".faceclust-albums.json").exists()
    assert run("scan", photos, "--catalog", cat, *FAKE, "--quiet").exit_code == 0
    refused = run("albums", photos, "--catalog", cat)
    assert refused.exit_code == 2 and "holds catalogued photos" in one_error_line(refused)
    inside = photos / "albums"  # a folder of its own inside the photo folder is fine
    assert run("run", photos, "--out", inside, "--catalog", cat, *FAKE, "--quiet").exit_code == 0
    assert json.loads(run("scan", photos, "--catalog", cat, *FAKE, "--json").output)["photos_seen"] == 6


def test_an_emptied_mount_point_below_the_root_is_kept_and_a_deleted_folder_is_pruned(tmp_path):
    lib, cat = tmp_path / "lib", tmp_path / "c.sqlite"
    two_people(lib / "main", 10)
    two_people(lib / "nas", 3)  # 6 photos: a share mounted inside the library
    two_people(lib / "2019-party", 3)
    assert run("scan", lib, "--catalog", cat, *FAKE, "--quiet").exit_code == 0
    (lib / "nas").rename(tmp_path / "unmounted")
    (lib / "nas").mkdir()  # the mount point stays, empty
    for photo in (lib / "2019-party").iterdir():  # a folder the user deleted
        photo.unlink()
    (lib / "2019-party").rmdir()
    result = run("scan", lib, "--catalog", cat, *FAKE, "--json")
    summary = json.loads(result.stdout)
    assert result.exit_code == 3 and summary["kept_missing"] == 6 and summary["gone"] == 6
    assert f"6 of the 6 catalogued photos under {lib / 'nas'} are missing" in result.stderr


def test_the_lock_holder_is_named_with_its_command(scanned, monkeypatch):
    monkeypatch.setenv("FACECLUST_LOCK_WAIT", "0.3")
    holder = subprocess.Popen([sys.executable, str(FAKE_CLI), "scan", str(scanned.parent / "photos"), "--catalog",
                               str(scanned), *FAKE, "--quiet"], env={**os.environ, "FAKE_CLI_DELAY": "0.5"})
    try:
        lock = scanned.with_name(scanned.name + ".scan.lock")
        deadline = time.monotonic() + 30
        while not (lock.exists() and f"pid {holder.pid}," in lock.read_text()):  # not the last holder's
            assert time.monotonic() < deadline, lock.read_text()
            time.sleep(0.05)
        assert lock.read_text().strip() == f"pid {holder.pid}, faceclust scan"
    finally:
        holder.kill()
        holder.wait()


def test_a_name_of_digits_only_is_refused_as_it_would_read_as_an_id(scanned):
    result = run("name", "1", "12", "--catalog", scanned)
    assert result.exit_code == 2 and "only digits" in one_error_line(result)
    assert run("name", "1", "2Pac", "--catalog", scanned).exit_code == 0


@pytest.mark.parametrize("args", [["cluster", "--threshold", "nan", "--full"], ["cluster", "--min-score", "inf"],
                                  ["scan", ".", "--read-timeout", "inf"], ["search", "--person", "1", "--threshold", "nan"]])
def test_nan_and_infinity_are_refused_like_any_bad_number(scanned, args):
    result = run(*args, "--catalog", scanned)
    assert result.exit_code == 2 and "is not a finite number" in result.output


def test_an_empty_catalog_name_is_a_usage_error(tmp_path):
    result = run("status", "--catalog", "")
    assert result.exit_code == 2 and "--catalog needs a file name" in one_error_line(result)


def test_the_program_leaves_a_complete_catalog_file_when_it_ends(tmp_path):
    """The program ends without the interpreter's teardown (os._exit): every catalog is closed
    before, so its write-ahead log is folded into the file (a copy of the .sqlite alone holds
    everything) and nothing is left half-written."""
    photos, cat = two_people(tmp_path / "photos"), tmp_path / "c.sqlite"
    for command in (["scan", photos, *FAKE, "--quiet"], ["cluster"], ["name", "1", "Ada"]):
        done = subprocess.run([sys.executable, str(FAKE_CLI), *command, "--catalog", cat],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        wal = cat.with_name(cat.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0, command
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(cat.read_bytes())
    from faceclust.catalog import Catalog

    with Catalog(copy) as c:
        assert c.people_named("Ada") == [1]


@pytest.mark.parametrize("command", [["export"], ["people"], ["status"], ["history"]])
def test_a_closed_pipe_ends_the_output_quietly(scanned, command):
    """``faceclust people | head -1``: the reader is gone before all is written."""
    read, write = os.pipe()
    os.close(read)  # every write now fails with EPIPE
    try:
        result = subprocess.run([sys.executable, str(FAKE_CLI), *command, "--catalog", str(scanned)],
                                stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert result.returncode != 0
    for noise in ("Traceback", "internal error", "Exception ignored", "Broken pipe"):
        assert noise not in result.stderr, result.stderr
