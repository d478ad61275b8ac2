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
