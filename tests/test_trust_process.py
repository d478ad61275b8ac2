"""Trust between processes and against the machine: a SIGKILL at any moment, two writers at
once, a read-only photo tree, planted symlinks, a full disk. Each runs the real command line
in its own process (tests/fake_cli.py: the fake models, and kill points at exact moments)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import draw_photo

FAKE_CLI = Path(__file__).resolve().parent / "fake_cli.py"
FAKE = ["--detector", "fake", "--min-face", "20"]
TIMEOUT = 120  # a hang fails the test


def cli(*args, env: dict | None = None, check_code: int | None = None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run([sys.executable, str(FAKE_CLI), *map(str, args)], capture_output=True, text=True,
                            timeout=TIMEOUT, env=full_env, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    if check_code is not None:
        assert result.returncode == check_code, (result.returncode, result.stdout, result.stderr)
    return result


def start(*args, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(FAKE_CLI), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def library(root: Path, people: int = 3, each: int = 8) -> Path:
    """``people`` people, ``each`` photos of each (one face), some group photos."""
    for p in range(people):
        for i in range(each):
            draw_photo(root / f"p{p}" / f"{i:02d}.png", [(p, 10 + i, 10 + p, 40)])
    draw_photo(root / "group" / "all.png", [(p, 10 + 70 * p, 100, 40) for p in range(people)])
    return root


def snapshot(catalog: Path, out: Path | None = None) -> dict:
    """What a user would call the result: photos, faces with their descriptors, people (ids,
    names and faces), and the album files with the manifest."""
    db = sqlite3.connect(catalog)
    db.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        photos = sorted(db.execute("SELECT path, status, size, content_hash FROM photos").fetchall())
        faces = sorted(db.execute(
            """SELECT p.path, f.left, f.top, f.right, f.bottom, f.score, e.vector FROM faces f
               JOIN photos p ON p.id = f.photo_id JOIN embeddings e ON e.face_id = f.id""").fetchall())
        people = sorted(db.execute(
            """SELECT pe.id, pe.name, pe.hidden, group_concat(p.path || '@' || f.left, '|') FROM people pe
               JOIN assignments a ON a.person_id = pe.id JOIN faces f ON f.id = a.face_id
               JOIN photos p ON p.id = f.photo_id GROUP BY pe.id""").fetchall())
        people = [(pid, name, hidden, tuple(sorted(members.split("|")))) for pid, name, hidden, members in people]
    finally:
        db.close()
    state = {"photos": photos, "faces": faces, "people": people}
    if out is not None:
        state["albums"] = album_files(out)
        manifest = json.loads((out / ".faceclust-albums.json").read_text())["entries"]
        state["manifest"] = {rel: (e["source"], e["mode"]) for rel, e in manifest.items()}
        assert not (out / ".faceclust-albums.journal").exists()
    return state


def album_files(out: Path) -> dict:
    files = {}
    for path in sorted(out.rglob("*")):
        rel = str(path.relative_to(out))
        if path.name in (".faceclust-albums.json", ".faceclust-albums.lock"):
            continue
        if path.is_symlink():
            files[rel] = ("link", os.readlink(path))
        elif path.is_file():
            files[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            files[rel] = ("dir",)
    return files


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return library(tmp_path_factory.mktemp("kill") / "photos")


@pytest.fixture(scope="module")
def clean(photos, tmp_path_factory):
    """The reference: one run that nobody interrupted, per album mode."""
    refs = {}
    for mode in ("symlink", "copy"):
        base = tmp_path_factory.mktemp(f"clean-{mode}")
        cli("run", photos, "--out", base / "albums", "--catalog", base / "c.sqlite", "--mode", mode,
            "--batch", "4", *FAKE, "--quiet", check_code=0)
        refs[mode] = snapshot(base / "c.sqlite", base / "albums")
    return refs


# Kill points: while a new catalog is being created (its 3rd migration), right after the 1st,
# 3rd and 6th scan batch is committed, inside the clustering transaction, after a file was
# placed in an album but before it was recorded, and after album journal lines; then SIGKILL
# at random moments of the whole run.
KILL_POINTS = [("commit:3", "symlink"), ("batch:1", "symlink"), ("batch:3", "symlink"), ("batch:6", "copy"),
               ("clustering:1", "symlink"), ("place:1", "copy"), ("place:7", "symlink"),
               ("journal:2", "copy"), ("journal:9", "symlink")]


@pytest.mark.parametrize("point, mode", KILL_POINTS)
def test_a_run_killed_at_an_exact_moment_ends_as_a_clean_run(photos, clean, tmp_path, point, mode):
    args = ["run", photos, "--out", tmp_path / "albums", "--catalog", tmp_path / "c.sqlite", "--mode", mode,
            "--batch", "4", *FAKE, "--quiet"]
    killed = cli(*args, env={"FAKE_CLI_KILL": point})
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
    cli(*args, check_code=0)
    assert snapshot(tmp_path / "c.sqlite", tmp_path / "albums") == clean[mode]


def test_runs_killed_at_random_moments_end_as_a_clean_run(photos, clean, tmp_path):
    """Six kills at random times across one catalog and album folder, then a run to the end."""
    rng = random.Random(7)
    args = ["run", photos, "--out", tmp_path / "albums", "--catalog", tmp_path / "c.sqlite", "--mode", "copy",
            "--batch", "4", *FAKE, "--quiet"]
    # How long a whole run takes here, start-up included, sets the range of kill times.
    started = time.monotonic()
    cli(*["run", photos, "--out", tmp_path / "probe", "--catalog", tmp_path / "probe.sqlite", "--batch", "4",
          *FAKE, "--quiet"], check_code=0)
    whole = time.monotonic() - started
    kills = 0
    for _ in range(6):
        process = start(*args)
        time.sleep(rng.uniform(0.3, 1.0) * whole)
        process.send_signal(signal.SIGKILL)
        _, err = process.communicate(timeout=TIMEOUT)
        assert "Traceback" not in err
        kills += process.returncode == -signal.SIGKILL
    cli(*args, check_code=0)
    assert snapshot(tmp_path / "c.sqlite", tmp_path / "albums") == clean["copy"]
    assert kills >= 3  # most of them really interrupted the run


# -- two writers ----------------------------------------------------------------------------


def test_two_scans_of_one_catalog_one_waits_and_both_succeed(photos, clean, tmp_path):
    cat = tmp_path / "c.sqlite"
    slow = {"FAKE_CLI_DELAY": "0.1"}
    first = start("scan", photos, "--catalog", cat, "--batch", "4", *FAKE, "--quiet", env=slow)
    wait_for_lock(cat, "scan")
    second = start("scan", photos, "--catalog", cat, "--batch", "4", *FAKE, "--quiet", env=slow)
    outcomes = [p.communicate(timeout=TIMEOUT) + (p.returncode,) for p in (first, second)]
    assert [code for *_, code in outcomes] == [0, 0], outcomes
    assert "waiting for another faceclust run on the catalog" in outcomes[1][1]
    cli("cluster", "--catalog", cat, "--quiet", check_code=0)
    state = snapshot(cat)
    assert state["faces"] == clean["symlink"]["faces"] and state["photos"] == clean["symlink"]["photos"]


def wait_for_lock(catalog: Path, part: str) -> None:
    """Until another process holds (and has described itself in) the catalog's lock."""
    lock = catalog.with_name(f"{catalog.name}.{part}.lock")
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text()):
        assert time.monotonic() < deadline, "the other process never took the lock"
        time.sleep(0.05)


def test_clustering_and_naming_during_a_scan_leave_a_consistent_catalog(photos, tmp_path):
    cat = tmp_path / "c.sqlite"
    cli("scan", photos / "p0", "--catalog", cat, *FAKE, "--quiet", check_code=0)
    cli("cluster", "--catalog", cat, "--quiet", check_code=0)
    scan = start("scan", photos, "--catalog", cat, "--batch", "2", *FAKE, "--quiet", env={"FAKE_CLI_DELAY": "0.1"})
    wait_for_lock(cat, "scan")
    named = cli("name", "1", "Ann", "--catalog", cat)
    clustered = cli("cluster", "--catalog", cat, "--quiet")
    out, err = scan.communicate(timeout=TIMEOUT)
    assert scan.returncode == 0, err
    assert named.returncode == 0 and clustered.returncode == 0, (named.stderr, clustered.stderr)
    cli("cluster", "--catalog", cat, "--quiet", check_code=0)
    state = snapshot(cat)  # integrity and foreign keys checked there
    assert [p for p in state["people"] if p[1] == "Ann"]
    assert sum(len(p[3]) for p in state["people"]) == len(state["faces"])  # every face placed once


def test_two_album_runs_one_waits_and_the_folder_ends_as_one_run_leaves_it(photos, clean, tmp_path):
    cat, out = tmp_path / "c.sqlite", tmp_path / "albums"
    cli("scan", photos, "--catalog", cat, "--batch", "4", *FAKE, "--quiet", check_code=0)
    cli("cluster", "--catalog", cat, "--quiet", check_code=0)
    runs = [start("albums", out, "--catalog", cat, "--mode", "copy") for _ in range(2)]
    results = [p.communicate(timeout=TIMEOUT) + (p.returncode,) for p in runs]
    assert [code for *_, code in results] == [0, 0], results
    added = sorted(int(r[0].split(": ")[1].split(" added")[0]) for r in results)
    assert added[0] == 0 and added[1] > 0  # the second saw the first's work, made nothing twice
    state = snapshot(cat, out)
    reference = {k: v for k, v in clean["copy"]["albums"].items() if k != "faceclust-report.html"}  # run's
    assert state["albums"] == reference and state["manifest"] == clean["copy"]["manifest"]


# -- a read-only photo tree -----------------------------------------------------------------


def _read_only(root: Path):
    """Mount ``root`` read-only over itself where allowed (root bypasses file modes);
    otherwise take write permission away."""
    try:
        subprocess.run(["mount", "--bind", root, root], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", root], check=True, capture_output=True)
        return lambda: subprocess.run(["umount", root], check=True)
    except (OSError, subprocess.CalledProcessError):
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return lambda: [p.chmod(p.stat().st_mode | 0o200) for p in [root, *root.rglob("*")]]


def fingerprint(root: Path) -> dict:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_every_command_works_on_a_read_only_photo_tree_and_originals_stay_identical(tmp_path):
    photos = library(tmp_path / "photos", people=2, each=4)
    before = fingerprint(photos)
    undo_mount = _read_only(photos)
    try:
        cat, out = tmp_path / "c.sqlite", tmp_path / "albums"
        probe = photos / "p0" / "probe"
        if os.access(photos, os.W_OK) and os.geteuid() != 0:
            pytest.fail("the photo tree should be read-only now")
        with pytest.raises(OSError):
            probe.write_text("x")  # really read-only, for root too
        cli("run", photos, "--out", out, "--catalog", cat, *FAKE, "--quiet", check_code=0)
        for mode in ("hardlink", "copy"):
            cli("albums", tmp_path / mode, "--catalog", cat, "--mode", mode, check_code=0)
        one = photos / "p0" / "00.png"
        for args in (["status"], ["people"], ["history"], ["cluster", "--full", "--quiet"], ["dedupe"],
                     ["export", "-o", tmp_path / "faces.csv"], ["report", tmp_path / "r.html"],
                     ["search", one, *FAKE], ["search", "--person", "1"], ["name", "1", "Ann"], ["undo"],
                     ["backup", tmp_path / "backup.sqlite"]):
            cli(*args, "--catalog", cat, check_code=0)
        cli("verify", one, photos / "p1" / "00.png", *FAKE, check_code=0)
        cli("scan", photos, "--catalog", cat, *FAKE, "--quiet", check_code=0)
    finally:
        undo_mount()
    assert fingerprint(photos) == before


# -- planted symlinks and hostile names -------------------------------------------------------


def outside_files(base: Path, out: Path) -> dict:
    return {str(p): (p.is_symlink(), p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(base.rglob("*")) if out not in p.parents and p != out}


HOSTILE = ["../../x", "/abs", "..", "CON", "é" * 300, "line\nbreak\x1b[31m", "\u202eevil", "<script>alert(1)</script>"]


def test_nothing_is_written_outside_out_through_planted_symlinks_or_hostile_names(tmp_path):
    photos = library(tmp_path / "photos", people=4, each=2)
    cat, out = tmp_path / "c.sqlite", tmp_path / "albums"
    cli("run", photos, "--out", out, "--catalog", cat, *FAKE, "--quiet", check_code=0)
    people = [p["id"] for p in json.loads(cli("people", "--catalog", cat, "--json", check_code=0).stdout)]
    assert len(people) == 4
    for half in (HOSTILE[:4], HOSTILE[4:]):  # four people: the names in two rounds, albums after each
        for pid, name in zip(people, half):
            cli("name", str(pid), name, "--catalog", cat, check_code=0)
        cli("albums", out, "--catalog", cat, check_code=0)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Names an attacker can predict: the old temporary names, a person folder, the unknown folder.
    for name in (".faceclust-albums.json.tmp", "faceclust-report.html.tmp", ".faceclust-albums.journal.tmp"):
        os.symlink(victim, out / name)
    os.symlink(victim, tmp_path / "c.sqlite.faiss.tmp")
    os.symlink(victim, tmp_path / "c.sqlite.faiss.json.tmp")
    os.symlink(elsewhere, out / "x")  # what '../../x' would become if names were not made safe
    os.symlink(elsewhere, out / "unknown")
    before = outside_files(tmp_path, out)
    draw_photo(photos / "late" / "new.png", [(0, 30, 30, 40)])  # a new photo: the index is rewritten
    result = cli("run", photos, "--out", out, "--catalog", cat, *FAKE, "--quiet")
    cli("albums", out, "--catalog", cat, "--unknown")
    cli("report", out / "faceclust-report.html", "--catalog", cat, check_code=0)
    assert result.returncode in (0, 3), result.stderr
    after = outside_files(tmp_path, out)
    new = set(after) - set(before)
    assert all(p.startswith(str(photos / "late")) or p.startswith(str(tmp_path / "c.sqlite")) for p in new), new
    assert victim.read_text() == "precious" and list(elsewhere.iterdir()) == []
    for path in out.rglob("*"):
        real = path.parent.resolve() / path.name
        assert out.resolve() in real.parents  # every entry lives inside OUT
        assert "\u202e" not in path.name and "\x1b" not in path.name and "\n" not in path.name
    report = (out / "faceclust-report.html").read_text()
    assert "<script>alert" not in report and "&lt;script&gt;" in report


# -- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", mount], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs root and CAP_SYS_ADMIN): {exc}")
    yield mount
    subprocess.run(["umount", "-l", mount], check=False)


def test_a_full_disk_fails_with_one_line_and_a_rerun_completes(small_disk, tmp_path, clean, photos):
    cat = small_disk / "c.sqlite"
    full = cli("scan", photos, "--catalog", cat, "--batch", "2", *FAKE, "--quiet")
    assert full.returncode == 1, (full.returncode, full.stderr)
    lines = [line for line in full.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "full; free some space and run again" in lines[0], full.stderr
    with sqlite3.connect(cat) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    subprocess.run(["mount", "-o", "remount,size=64m", small_disk], check=True)
    cli("scan", photos, "--catalog", cat, "--batch", "2", *FAKE, "--quiet", check_code=0)
    cli("cluster", "--catalog", cat, "--quiet", check_code=0)
    state = snapshot(cat)
    assert state["faces"] == clean["symlink"]["faces"] and state["people"] == clean["symlink"]["people"]


def test_a_backup_taken_during_a_scan_is_consistent_and_usable(photos, clean, tmp_path):
    cat, copy = tmp_path / "c.sqlite", tmp_path / "backup.sqlite"
    scan = start("scan", photos, "--catalog", cat, "--batch", "2", *FAKE, "--quiet", env={"FAKE_CLI_DELAY": "0.1"})
    wait_for_lock(cat, "scan")
    deadline = time.monotonic() + 60
    while not _count(cat, "SELECT COUNT(*) FROM photos"):  # some batches are in
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cli("backup", copy, "--catalog", cat, check_code=0)
    _, err = scan.communicate(timeout=TIMEOUT)
    assert scan.returncode == 0, err
    partial, final = snapshot(copy), snapshot(cat)  # integrity and foreign keys checked there
    assert 0 < len(partial["photos"]) < len(final["photos"])  # taken mid-scan
    # Whole batches only: every photo in the copy has exactly its faces.
    in_copy = {p[0] for p in partial["photos"]}
    assert partial["faces"] == [f for f in final["faces"] if f[0] in in_copy]
    cli("scan", photos, "--catalog", copy, *FAKE, "--quiet", check_code=0)  # the copy carries on
    assert snapshot(copy)["faces"] == clean["symlink"]["faces"]


def _count(catalog: Path, sql: str) -> int:
    if not catalog.exists():
        return 0
    db = sqlite3.connect(catalog, timeout=5)
    try:
        return db.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # the schema is being created
        return 0
    finally:
        db.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_with_130_and_a_rerun_finishes(photos, clean, tmp_path, sig):
    cat = tmp_path / "c.sqlite"
    scan = start("scan", photos, "--catalog", cat, "--batch", "2", *FAKE, "--quiet", env={"FAKE_CLI_DELAY": "0.1"})
    wait_for_lock(cat, "scan")
    deadline = time.monotonic() + 60
    while not _count(cat, "SELECT COUNT(*) FROM photos"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    scan.send_signal(sig)
    _, err = scan.communicate(timeout=TIMEOUT)
    assert scan.returncode == 130, err
    assert err.strip() == "stopped; progress saved, run again to continue"
    saved = _count(cat, "SELECT COUNT(*) FROM photos")
    assert 0 < saved < len(clean["symlink"]["photos"])
    assert _count(cat, "SELECT COUNT(*) FROM runs WHERE status = 'interrupted'") == 1
    cli("scan", photos, "--catalog", cat, "--batch", "2", *FAKE, "--quiet", check_code=0)
    assert snapshot(cat)["faces"] == clean["symlink"]["faces"]


@pytest.fixture
def clustered(tmp_path):
    photos = library(tmp_path / "photos", people=3, each=3)
    cat = tmp_path / "c.sqlite"
    cli("scan", photos, "--catalog", cat, *FAKE, "--quiet", check_code=0)
    cli("cluster", "--catalog", cat, "--quiet", check_code=0)
    return cat


@pytest.mark.parametrize("name", [".faceclust-albums.json", ".faceclust-albums.journal", ".faceclust-albums.lock"])
@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_faceclusts_own_files_in_out_are_never_followed_nor_waited_on(clustered, tmp_path, name, planted):
    out = tmp_path / "albums"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    if planted == "symlink":
        os.symlink(victim, out / name)
    else:
        os.mkfifo(out / name)  # an open that waits for a writer would hang forever
    result = cli("albums", out, "--catalog", clustered)  # a hang fails through the timeout
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and ("remove it" in lines[0] or "move it away" in lines[0]), result.stderr
    assert victim.read_text() == "precious"
    assert not [p for p in out.iterdir() if p.name not in (name, ".faceclust-albums.lock")]  # nothing made


def test_an_album_folder_inside_the_photos_is_skipped_by_scans_from_its_first_file(tmp_path):
    """Killed while placing its first files, a first album run inside the photo folder must
    already be an album folder to the next scan, or its copies would be catalogued as photos."""
    photos = library(tmp_path / "photos", people=2, each=4)
    cat, out = tmp_path / "c.sqlite", photos / "albums"
    killed = cli("run", photos, "--out", out, "--mode", "copy", "--catalog", cat, *FAKE, "--quiet",
                 env={"FAKE_CLI_KILL": "place:3"})
    assert killed.returncode == -signal.SIGKILL
    rescan = json.loads(cli("scan", photos, "--catalog", cat, *FAKE, "--json", check_code=0).stdout)
    assert rescan["photos_seen"] == 9 and rescan["copied"] == 0
    cli("albums", out, "--mode", "copy", "--catalog", cat, check_code=0)


def test_two_people_never_share_an_album_folder_whatever_their_names(clustered, tmp_path):
    people = [p["id"] for p in json.loads(cli("people", "--catalog", clustered, "--json").stdout)]
    a, b, c = sorted(people)
    for pid, name in ((a, "X"), (b, f"X ({c})"), (c, "X")):
        cli("name", str(pid), name, "--catalog", clustered, check_code=0)
    out = tmp_path / "albums"
    cli("albums", out, "--catalog", clustered, check_code=0)
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 3 and "X" in folders and f"X ({c})" in folders
    assert [len(list((out / f).iterdir())) for f in folders] == [4, 4, 4]  # 3 photos each and the group


def test_a_kill_during_an_album_update_leaves_no_folder_a_clean_run_would_not(clustered, tmp_path):
    out, reference = tmp_path / "albums", tmp_path / "reference"
    cli("albums", out, "--catalog", clustered, check_code=0)
    cli("name", "3", "Renamed", "--catalog", clustered, check_code=0)  # person-0003/ must go
    killed = cli("albums", out, "--catalog", clustered, env={"FAKE_CLI_KILL": "journal:4"})
    assert killed.returncode == -signal.SIGKILL
    cli("albums", out, "--catalog", clustered, check_code=0)
    cli("albums", reference, "--catalog", clustered, check_code=0)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())


def test_a_read_only_catalog_can_still_be_read(clustered, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    for path in clustered.parent.glob("c.sqlite*"):
        if not path.name.endswith(".lock"):
            path.rename(folder / path.name)
    cat = folder / "c.sqlite"
    undo_mount = _read_only(folder)
    try:
        for args in (["status", "--json"], ["people"], ["history"], ["export"], ["dedupe"],
                     ["backup", tmp_path / "copy.sqlite"]):
            cli(*args, "--catalog", cat, check_code=0)
        refused = cli("name", "1", "Ann", "--catalog", cat)
        assert refused.returncode == 1 and "read-only" in refused.stderr, refused.stderr
        assert len([line for line in refused.stderr.splitlines() if line.strip()]) == 1
    finally:
        undo_mount()
    assert json.loads(cli("status", "--json", "--catalog", tmp_path / "copy.sqlite", check_code=0).stdout)["people"] == 3


def test_a_killed_scan_is_shown_as_killed_not_running(photos, tmp_path):
    cat = tmp_path / "c.sqlite"
    killed = cli("scan", photos, "--catalog", cat, "--batch", "4", *FAKE, "--quiet", env={"FAKE_CLI_KILL": "batch:3"})
    assert killed.returncode == -signal.SIGKILL
    status = json.loads(cli("status", "--json", "--catalog", cat, check_code=0).stdout)
    assert status["last_run"]["status"] == "killed"
    cli("scan", photos, "--catalog", cat, *FAKE, "--quiet", check_code=0)
    assert _count(cat, "SELECT COUNT(*) FROM runs WHERE status = 'running'") == 0
    assert _count(cat, "SELECT COUNT(*) FROM runs WHERE status = 'killed'") == 1
