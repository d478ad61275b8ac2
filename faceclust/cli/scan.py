"""Commands that fill and read the catalog as a whole: scan, run (the main job), status, backup."""

from __future__ import annotations

import json
from pathlib import Path

import click

from faceclust.cli.options import (
    ALBUM_MODES,
    DETECT_OPTIONS,
    Finite,
    apply_options,
    catalog_option,
    json_option,
    option,
    quiet_option,
    threads_option,
)
from faceclust.cli.options import catalog_path as _catalog_path
from faceclust.cli.options import given as _given
from faceclust.cli.show import exit_for_problems, print_album_problems, print_problems
from faceclust.text import printable


def scan_options(command):
    """The detection options shared by ``scan`` and ``run``."""
    return apply_options(command, DETECT_OPTIONS + [
        option("--max-side", type=click.IntRange(min=64), default=None, show_default="1600",
                     help="Longest side the detector works at; bounds time on big photos."),
        option("--upsample", type=click.IntRange(0, 3), default=None,
                     help="Force the detection scale to 2**N (overrides --min-face; like --min-face, "
                          "a photo is enlarged only when nothing was found at its own size, "
                          "unless --thorough or --exact)."),
        option("--min-score", type=Finite(), default=None, show_default="0",
                     help="Keep detections scoring above this."),
        option("--precision", type=click.Choice(["auto", "fp32", "bf16", "int8"]), default=None,
                     show_default="auto",
                     help="Arithmetic of the mmod detector: auto (int8 on a CPU with VNNI, else "
                          "fp32), or one of them."),
        option("--thorough", is_flag=True, default=None,
                     help="mmod: enlarge every small photo to look for faces below 80 px, not only "
                          "photos where no bigger face was found (finds small bystanders; slower)."),
        option("--exact", is_flag=True, default=None,
                     help="mmod: reproduce dlib's CNN detector exactly (its rectangles; fp32, "
                          "thorough; several times slower)."),
        option("--batch", "batch_photos", type=click.IntRange(min=1), default=None, show_default="32",
                     help="Photos per committed batch."),
        option("--read-timeout", "stall_seconds", type=Finite(min=0, max=86400, min_open=True), default=None,
               show_default="60", metavar="SECONDS",
               help="Give up on a photo or folder that delivers nothing for this long (a hung network share); "
                    "the next scan tries again."),
        option("--prune", is_flag=True, default=None,
                     help="Mark missing photos gone even when most of a folder's photos vanished at once "
                          "(without it they are kept: an unmounted share or an emptied folder looks like that)."),
        option("--model", default=None, metavar="MODEL.pt|default|dlib",
                     help="Embed with this fine-tuned model (from 'faceclust train'), 'default' for the "
                          "pretrained default (the fused descriptor: dlib's ResNet and SFace), or 'dlib' for "
                          "dlib's ResNet alone. The catalog remembers it; faces already found are re-embedded "
                          "without detecting them again. [default: the catalog's current model]"),
        option("--no-import", "no_import", is_flag=True, default=None,
               help="Do not read face tags other programs wrote (MWG / Microsoft regions in XMP sidecars and "
                    "in the photos' own XMP); by default a tagged face joins the person of that name."),
    ])


def _scan_options(batch_photos=None, model=None, prune=None, stall_seconds=None, update_index=True, no_import=None,
                  **detect):
    """ScanOptions from the options of :func:`scan_options` (None or an absent flag: the
    library's default)."""
    from faceclust.faces.detect import DetectOptions
    from faceclust.scan.options import ScanOptions

    detect = DetectOptions(**_given(**detect))
    return ScanOptions(**_given(detect=detect, batch_photos=batch_photos, model=model, prune=prune,
                                stall_seconds=stall_seconds),
                       update_index=update_index, import_tags=not no_import)


@click.command()
@threads_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@catalog_option
@scan_options
@option("--no-index", is_flag=True, help="Do not refresh the FAISS index after the scan.")
@quiet_option
@json_option
def scan(paths, catalog, no_index, quiet, as_json, **scan_args):
    """Find, align and embed every face in PATHS (folders or files) into the catalog.

    Incremental and resumable: unchanged files are not decoded again, moved files keep their
    faces, and a killed scan continues where it stopped. Unreadable files are recorded and
    counted; they do not stop the scan.
    """
    from faceclust.cli.progress import ScanProgress
    from faceclust.scan.scanner import scan_library

    options = _scan_options(update_index=not no_index, **scan_args)
    path = _catalog_path(catalog)
    with ScanProgress(enabled=not quiet and not as_json) as progress:
        summary = scan_library(path, paths, options, progress).as_dict()
    _print_summary(summary, path, quiet, as_json)
    exit_for_problems(summary)


def _print_summary(summary: dict, catalog: Path, quiet: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"catalog": str(catalog), **summary}, default=str))
    elif not quiet:
        from faceclust.cli.progress import print_scan_summary

        print_scan_summary(summary, catalog)
    print_problems(summary)


@click.command()
@threads_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the albums (one folder per person) and the report.")
@catalog_option
@option("--mode", type=click.Choice(ALBUM_MODES), default="symlink", show_default=True,
              help="How photos appear in the albums.")
@option("--xmp", "xmp", is_flag=True, help="Also write named people's face regions to XMP sidecars ('faceclust xmp').")
@option("--sidecar-name", type=click.Choice(["photo.jpg.xmp", "photo.xmp"]), default="photo.jpg.xmp",
        show_default=True, help="Sidecar naming for --xmp.")
@scan_options
@quiet_option
@json_option
def run(paths, out, catalog, mode, xmp, sidecar_name, quiet, as_json, **scan_args):
    """The main job: scan PATHS, cluster faces into people, write albums and a report to OUT.

    Every step is incremental: running it again after adding photos only does the new work and
    keeps names and manual decisions.
    """
    from faceclust.cli.progress import ScanProgress
    from faceclust.job import run_job

    path = _catalog_path(catalog)
    with ScanProgress(enabled=not quiet and not as_json) as progress:
        summary = run_job(path, paths, out, _scan_options(**scan_args), album_mode=mode, progress=progress,
                          xmp=sidecar_name if xmp else None)
    if as_json:
        click.echo(json.dumps(summary, default=str))
    elif not quiet:
        from faceclust.cli.progress import print_scan_summary

        print_scan_summary(summary["scan"], path)
        c, a = summary["cluster"], summary["albums"]
        click.echo(f"{c['people']} people ({c['unknown']} faces unknown); albums in {printable(out)}: "
                   f"{a['added']} added, {a['removed']} removed; report: {printable(summary['report'])}")
        if "xmp" in summary:
            x = summary["xmp"]
            click.echo(f"XMP sidecars: {x['written']} written, {x['unchanged']} unchanged, {x['cleared']} cleared")
    print_problems(summary["scan"])
    print_album_problems(summary["albums"])
    for _sidecar, message in summary.get("xmp", {}).get("errors", [])[:5]:
        click.echo(printable(message), err=True)
    exit_for_problems(summary["scan"], summary["albums"], {"errors": len(summary.get("xmp", {}).get("errors", []))})


@click.command()
@catalog_option
@json_option
def status(catalog, as_json):
    """Show what the catalog holds: photos, faces, people, embeddings, the files that could not
    be read, the last run."""
    from faceclust.job import catalog_status

    path = _catalog_path(catalog)
    counts = catalog_status(path)
    if as_json:
        click.echo(json.dumps({"catalog": str(path), **counts}, default=str))
        return
    from faceclust.cli.progress import print_status

    print_status(counts, path)


@click.command()
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@catalog_option
def backup(destination, catalog):
    """Copy the catalog to DESTINATION, consistent even while another faceclust run writes to it
    (SQLite's online backup). Restore by using the copy as --catalog."""
    from faceclust.catalog import backup_catalog

    size = backup_catalog(_catalog_path(catalog), destination)
    click.echo(f"catalog backed up to {printable(destination)} ({size / 2**20:.1f} MiB)")


COMMANDS = (scan, run, status, backup)
