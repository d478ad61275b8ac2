"""Progress on stderr for every long command: plain lines when stderr is not a terminal (cron,
pipes), nothing with --quiet or --json; "loading models..." while a scan loads its models."""

from __future__ import annotations

import json

import pytest
from conftest import FAKE_SCAN, draw_photo, run_cli

FAKE = FAKE_SCAN


pytestmark = pytest.mark.usefixtures("fake_default_embedder")


run = run_cli


@pytest.fixture
def library(tmp_path):
    for colour in range(3):
        for k in range(2):
            draw_photo(tmp_path / "photos" / f"c{colour}_{k}.png", [(colour, 40, 40, 60)])
    return tmp_path


def test_each_long_command_reports_its_progress_in_plain_lines(library):
    catalog = library / "c.sqlite"
    scan = run("scan", library / "photos", "--catalog", catalog, *FAKE)
    assert scan.exit_code == 0 and "loading models..." in scan.stderr
    assert "scan: 6/6 photos, 6 faces" in scan.stderr
    cluster = run("cluster", "--catalog", catalog)
    assert cluster.exit_code == 0 and "cluster: step 3/3 (done), 6 faces" in cluster.stderr
    albums = run("albums", library / "albums", "--catalog", catalog)
    assert albums.exit_code == 0 and "albums: 6/6" in albums.stderr
    report = run("report", library / "r.html", "--catalog", catalog)
    assert report.exit_code == 0 and "report thumbnails: 6/6" in report.stderr
    dedupe = run("dedupe", "--catalog", catalog)
    assert dedupe.exit_code == 0 and "dedupe: step 3/3 (done), 6 faces" in dedupe.stderr
    # stdout stays what it was: the summaries.
    assert "people" in cluster.stdout and "albums: 6/6" not in albums.stdout


def test_quiet_and_json_show_no_progress(library):
    catalog = library / "c.sqlite"
    assert run("scan", library / "photos", "--catalog", catalog, *FAKE, "--quiet").stderr == ""
    quiet = run("cluster", "--catalog", catalog, "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    as_json = run("albums", library / "albums", "--catalog", catalog, "--json")
    assert as_json.stderr == "" and json.loads(as_json.stdout)["added"] == 6
    assert run("dedupe", "--catalog", catalog, "--json").stderr == ""


def test_plain_scan_lines_give_the_rate_since_the_scan_began_and_an_eta(monkeypatch):
    import io

    from faceclust.cli import progress as progress_module
    from faceclust.records import ProgressEvent

    clock = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    shown = progress_module.ScanProgress(stream=out)
    clock[0] += 30  # walking and loading models do not count in the rate
    shown(ProgressEvent("photos", 0, 1000))
    clock[0] += 20
    shown(ProgressEvent("photos", 100, 1000, 80, 1))  # 5 photos/s: 900 left, 3 minutes
    clock[0] += 5
    shown(ProgressEvent("photos", 150, 1000, 120, 1))  # under 10 s since the last line: not shown
    clock[0] += 880
    shown(ProgressEvent("photos", 1000, 1000, 800, 2))
    lines = out.getvalue().splitlines()
    assert lines[1] == "scan: 100/1000 photos, 80 faces, 1 errors, 5.0 photos/s, ETA 3m00s"
    assert len(lines) == 3 and lines[2].startswith("scan: 1000/1000 photos, 800 faces, 2 errors, 1.1 photos/s")
    assert "ETA" not in lines[2]
    assert [progress_module.eta_text(s) for s in (0.4, 59, 61, 3599, 3600 * 3 + 7 * 60 + 20)] == \
        ["0s", "59s", "1m01s", "59m59s", "3h07m"]
