"""The main job: scan photo folders, cluster faces into people, write albums and a report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from faceclust.output.report import REPORT_NAME


def run_job(catalog_path: Path, roots: Sequence[Path], out: Path, scan_options=None, cluster_options=None,
            album_mode: str = "symlink", include_unknown: bool = False, progress=None,
            xmp: str | None = None) -> dict:
    """scan + cluster + albums + report with the library's defaults; returns their summaries.

    The report goes to ``OUT/faceclust-report.html``, next to the person folders. With ``xmp``
    (a sidecar naming, see :func:`faceclust.output.xmp.write_xmp_sidecars`) the people's face
    regions are then written to XMP sidecars too.
    """
    from faceclust.output.album_plan import check_outside_photos
    from faceclust.output.albums import AlbumWriter, write_albums
    from faceclust.output.report import write_report
    from faceclust.people import cluster_library
    from faceclust.scan.scanner import scan_library

    AlbumWriter(out, album_mode)  # a bad mode fails before an hour of scanning
    if xmp is not None:
        from faceclust.photos.xmp import sidecar_path

        sidecar_path(Path("photo.jpg"), xmp)  # so does a bad sidecar naming
    # So does an album folder that is (or holds) a photo folder.
    check_outside_photos(out, photo_folders=[r for r in roots if os.path.isdir(r)])
    scanned = scan_library(catalog_path, roots, scan_options, progress)
    clustered = cluster_library(catalog_path, cluster_options, progress=progress)
    albums = write_albums(catalog_path, out, album_mode, include_unknown, progress=progress)
    report = Path(out) / REPORT_NAME
    write_report(catalog_path, report, progress=progress)
    summary = {"scan": scanned.as_dict(), "cluster": clustered.as_dict(), "albums": albums.as_dict(),
               "report": str(report)}
    if xmp is not None:
        from faceclust.output.xmp import write_xmp_sidecars

        summary["xmp"] = write_xmp_sidecars(catalog_path, xmp, progress=progress).as_dict()
    return summary


def catalog_status(catalog_path: Path) -> dict:
    """What ``faceclust status`` shows: counts, people, the model, the files that could not be
    read at their last scan (the first 20), the last run (times in ISO 8601)."""
    from faceclust.catalog import Catalog
    from faceclust.errors import FaceclustError
    from faceclust.faces.embed import DEFAULT_EMBEDDER, catalog_model
    from faceclust.locks import catalog_lock

    with Catalog(catalog_path, create=False) as cat:
        counts = cat.counts()
        counts["files_with_errors"] = [{"path": p, "error": e} for p, e in cat.photo_errors(20)]
        counts["last_run"] = last = cat.last_run()
        if last and last["status"] == "running" and not catalog_lock(cat.path, "scan").held_elsewhere():
            last["status"] = "killed"  # nobody holds the scan lock: that run did not finish
        try:
            model = catalog_model(cat)
            counts["model"] = {"model_id": model.model_id, "checkpoint": model.checkpoint,
                               "distance_scale": model.distance_scale, "embedder": model.embedder,
                               "is_default": model.embedder == DEFAULT_EMBEDDER}
        except FaceclustError as exc:  # the pretrained model's files are missing: still show the rest
            counts["model"] = {"model_id": None, "checkpoint": None, "error": str(exc)}
    return counts
