"""Commands that write what a user looks at: albums, the report, exports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from faceclust.cli.options import ALBUM_MODES, catalog_option, json_option, option
from faceclust.cli.options import catalog_path as _catalog_path
from faceclust.cli.show import exit_for_problems, print_album_problems
from faceclust.text import printable


@click.command()
@catalog_option
@option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="Row format.")
@option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write rows to this file instead of stdout.")
@option("--embeddings", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the descriptors, in the same row order, to this .npy file.")
def export(catalog, fmt, output, embeddings):
    """Export one row per face: photo, face_id, box (original pixels), score, person.

    Photo paths are written byte for byte as the filesystem has them (a file name that is not
    UTF-8 stays as it is)."""
    from faceclust.output.export import export_library

    if output is None:
        sys.stdout.reconfigure(errors="surrogateescape")
    count = export_library(_catalog_path(catalog), output or sys.stdout, fmt, embeddings)
    click.echo(f"{count} faces exported", err=True)


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@catalog_option
@option("--mode", type=click.Choice(ALBUM_MODES), default="symlink", show_default=True,
              help="How photos appear in the albums; originals are never moved or modified.")
@option("--unknown", "include_unknown", is_flag=True, help="Also fill OUT/unknown with photos of unknown faces.")
@option("--dedupe", "skip_duplicates", is_flag=True,
              help="Keep one photo of each group of duplicate photos (see 'faceclust dedupe').")
@json_option
def albums(out, catalog, mode, include_unknown, skip_duplicates, as_json):
    """Write one folder per person under OUT (a photo with several people is in each folder).

    Re-running updates OUT: new photos are added, photos whose faces moved are removed, and
    files faceclust did not create are never touched.
    """
    from faceclust.cli.progress import ScanProgress
    from faceclust.output.albums import write_albums

    with ScanProgress(enabled=not as_json) as progress:
        summary = write_albums(_catalog_path(catalog), out, mode, include_unknown, skip_duplicates,
                               progress=progress).as_dict()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"{summary['people']} people in {printable(out)}: {summary['added']} added, "
                   f"{summary['removed']} removed, {summary['kept']} unchanged")
    print_album_problems(summary)
    exit_for_problems(summary)


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@catalog_option
def report(out, catalog):
    """Write a self-contained HTML page OUT with a row of face thumbnails per person."""
    from faceclust.cli.progress import ScanProgress
    from faceclust.output.report import write_report

    with ScanProgress() as progress:
        shown = write_report(_catalog_path(catalog), out, progress=progress)
    click.echo(f"{shown} people in {printable(out)}")


@click.command()
@catalog_option
@option("--sidecar-name", type=click.Choice(["photo.jpg.xmp", "photo.xmp"]), default="photo.jpg.xmp",
        show_default=True, help="Sidecar naming: photo.jpg.xmp (digiKam, darktable) or photo.xmp (Lightroom).")
@option("--dry-run", is_flag=True, help="Count the sidecars that would be written; write none.")
@json_option
def xmp(catalog, sidecar_name, dry_run, as_json):
    """Write face regions and names to XMP sidecars beside the photos, for other programs.

    Each photo with named people gets Metadata Working Group face regions and the names as
    keywords (dc:subject, digiKam's People/ tags) in its sidecar. An existing sidecar keeps
    everything faceclust did not write; photos themselves are never modified. Running it again
    writes only what changed.
    """
    from faceclust.cli.progress import ScanProgress
    from faceclust.output.xmp import write_xmp_sidecars

    with ScanProgress(enabled=not as_json) as progress:
        summary = write_xmp_sidecars(_catalog_path(catalog), sidecar_name, dry_run, progress=progress).as_dict()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        verb = "would be written" if dry_run else "written"
        click.echo(f"{summary['photos']} photos with named people: {summary['written']} sidecars {verb}, "
                   f"{summary['unchanged']} unchanged, {summary['cleared']} cleared of faceclust's regions"
                   + (f", {summary['skipped']} photos changed since their scan (scan them again)"
                      if summary["skipped"] else ""))
    for _sidecar, message in summary["errors"][:5]:
        click.echo(printable(message), err=True)  # the message names the sidecar
    if len(summary["errors"]) > 5:
        click.echo(f"... {len(summary['errors'])} sidecars could not be written", err=True)
    exit_for_problems({"errors": len(summary["errors"])})


COMMANDS = (export, albums, report, xmp)
