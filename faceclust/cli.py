"""The command line: thin click commands over the library.

Each command makes one library call. Options default to None and are dropped, so every default
lives once, in the library. Library errors (FaceclustError) become clear messages here.
Heavy modules (torch, faiss, numpy) are imported inside commands: ``--help`` stays instant.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from faceclust import __version__
from faceclust.cli_errors import EXIT_CODES_HELP, EXIT_PARTIAL, translate
from faceclust.cli_options import (
    ALBUM_MODES,
    CATALOG_META,
    DETECT_OPTIONS,
    Finite,
    Registered,
    apply_options,
    catalog_option,
    json_option,
    option,
    quiet_option,
)
from faceclust.cli_options import catalog_path as _catalog_path
from faceclust.cli_options import given as _given
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
        option("--model", default=None, metavar="MODEL.pt|default",
                     help="Embed with this fine-tuned model (from 'faceclust train'), or 'default' for the "
                          "pretrained one. The catalog remembers it; faces already found are re-embedded "
                          "without detecting them again. [default: the catalog's current model]"),
    ])


def _scan_options(batch_photos=None, model=None, prune=None, stall_seconds=None, update_index=True, **detect):
    """ScanOptions from the options of :func:`scan_options` (None or an absent flag: the
    library's default)."""
    from faceclust.faces.detect import DetectOptions
    from faceclust.scan.scanner import ScanOptions

    detect = DetectOptions(**_given(**detect))
    return ScanOptions(**_given(detect=detect, batch_photos=batch_photos, model=model, prune=prune,
                                stall_seconds=stall_seconds),
                       update_index=update_index)


class _Group(click.Group):
    def invoke(self, ctx):
        from faceclust import locks

        locks.on_wait = lambda message: click.echo(printable(message), err=True)
        _stop_cleanly_on_sigterm()
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (``faceclust people | head -1``): stop quietly, as 'ls' does.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(141) from None
        except BaseException as exc:  # noqa: BLE001 - every error a user can cause is one line
            translated = translate(exc, ctx.meta.get(CATALOG_META))
            if translated is None:
                raise
            raise translated from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="faceclust")
def main() -> None:
    """Turn a photo library into albums grouped by person.

    Everything runs offline on the CPU with dlib's pretrained face models rebuilt in torch.
    Originals are only ever read.
    """
    import os
    import warnings

    from faceclust.memory import keep_freed_memory

    keep_freed_memory()
    if not os.environ.get("FACECLUST_DEBUG"):
        # Libraries' warnings (Pillow on odd EXIF tags, torch on deprecations) name source files
        # and lines: Python internals, not something a user can act on. Problems a user can act
        # on are reported by faceclust itself.
        warnings.simplefilter("ignore")


@main.command()
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
    from faceclust.progress import ScanProgress
    from faceclust.scan.scanner import scan_library

    options = _scan_options(update_index=not no_index, **scan_args)
    path = _catalog_path(catalog)
    with ScanProgress(enabled=not quiet and not as_json) as progress:
        summary = scan_library(path, paths, options, progress).as_dict()
    _print_summary(summary, path, quiet, as_json)
    _exit_for_problems(summary)


def _stop_cleanly_on_sigterm() -> None:
    """A batch job stopped with SIGTERM ends like Ctrl-C: the run is recorded as interrupted
    (committed batches are kept either way)."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _print_summary(summary: dict, catalog: Path, quiet: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"catalog": str(catalog), **summary}, default=str))
    elif not quiet:
        from faceclust.progress import print_scan_summary

        print_scan_summary(summary, catalog)
    _print_problems(summary)


def _print_problems(summary: dict, shown: int = 5) -> None:
    """Per-file errors and warnings go to stderr whatever --quiet or --json say: a count and
    the first few (files that failed the same way before are counted, not listed again)."""
    errors = summary.get("errors", 0)
    if errors:
        click.echo(f"{errors} file{'s' if errors != 1 else ''} could not be read"
                   + (f" (the first {shown} below)" if errors > shown else "")
                   + "; 'faceclust status' lists them", err=True)
        for path, message in summary.get("error_samples", [])[:shown]:
            click.echo(f"  {printable(path)}: {printable(message)}", err=True)
    for warning in summary.get("warnings", []):
        click.echo(f"warning: {printable(warning)}", err=True)


def _exit_for_problems(*summaries: dict) -> None:
    """Exit code 3 when the run finished but some files could not be read or were kept back."""
    if any(s.get("errors") or s.get("kept_missing") for s in summaries):
        raise click.exceptions.Exit(EXIT_PARTIAL)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the albums (one folder per person) and the report.")
@catalog_option
@option("--mode", type=click.Choice(ALBUM_MODES), default="symlink", show_default=True,
              help="How photos appear in the albums.")
@scan_options
@quiet_option
@json_option
def run(paths, out, catalog, mode, quiet, as_json, **scan_args):
    """The main job: scan PATHS, cluster faces into people, write albums and a report to OUT.

    Every step is incremental: running it again after adding photos only does the new work and
    keeps names and manual decisions.
    """
    from faceclust.job import run_job
    from faceclust.progress import ScanProgress

    path = _catalog_path(catalog)
    with ScanProgress(enabled=not quiet and not as_json) as progress:
        summary = run_job(path, paths, out, _scan_options(**scan_args), album_mode=mode, progress=progress)
    if as_json:
        click.echo(json.dumps(summary, default=str))
    elif not quiet:
        from faceclust.progress import print_scan_summary

        print_scan_summary(summary["scan"], path)
        c, a = summary["cluster"], summary["albums"]
        click.echo(f"{c['people']} people ({c['unknown']} faces unknown); albums in {printable(out)}: "
                   f"{a['added']} added, {a['removed']} removed; report: {printable(summary['report'])}")
    _print_problems(summary["scan"])
    _print_album_problems(summary["albums"])
    _exit_for_problems(summary["scan"], summary["albums"])


def _print_album_problems(summary: dict, shown: int = 5) -> None:
    for rel, message in summary.get("errors", [])[:shown]:
        click.echo(f"album entry {printable(rel)}: {printable(message)}", err=True)
    if len(summary.get("errors", [])) > shown:
        click.echo(f"... {len(summary['errors'])} album entries could not be written", err=True)


@main.command()
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
    from faceclust.progress import print_status

    print_status(counts, path)


@main.command()
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


@main.command()
@catalog_option
@option("--method", type=Registered("faceclust.people.cluster:clusterers",
                                          ("agglomerative", "hdbscan", "chinese-whispers", "kmeans")),
              default=None, show_default="agglomerative", help="Clusterer.")
@option("--min-faces", type=click.IntRange(min=1), default=None, show_default="2",
              help="Faces a group needs to become a person; smaller groups stay unknown.")
@option("--min-face-size", type=Finite(min=0), default=None, show_default="0",
              help="Leave faces narrower than this many pixels out of clustering.")
@option("--min-score", type=Finite(), default=None, help="Leave faces detected below this score out.")
@option("--threshold", type=Finite(0, 2, min_open=True), default=None,
              help="Distance threshold of the method: a chord distance between L2-normalised "
                   "descriptors, so at most 2 [default: the method's, 0.35 for agglomerative].")
@option("--full", is_flag=True,
              help="Re-cluster every face (names and manual decisions are kept); default: only add and grow people.")
@quiet_option
@json_option
def cluster(catalog, method, min_faces, min_face_size, min_score, threshold, full, quiet, as_json):
    """Group the catalog's faces into people.

    The first run clusters everything. Later runs keep existing people and their names, add
    new faces to the person their nearest faces agree on, and cluster the rest into new people.
    Two faces of one photo are never the same person.
    """
    from faceclust.people import ClusterOptions, cluster_library

    options = ClusterOptions(**_given(method=method, min_faces=min_faces, min_face_size=min_face_size,
                                      min_score=min_score), full=full,
                             method_options=_given(threshold=threshold))
    summary = cluster_library(_catalog_path(catalog), options).as_dict()
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        click.echo(f"{summary['people']} people, {summary['assigned']} faces assigned, "
                   f"{summary['unknown']} unknown ({summary['mode']}: {summary['new_people']} new people, "
                   f"{summary['recognized']} faces recognised) in {summary['seconds']:.1f} s")


@main.command()
@catalog_option
@option("--all", "include_hidden", is_flag=True, help="Include hidden people.")
@json_option
def people(catalog, include_hidden, as_json):
    """List people: id, name, faces, photos (biggest first)."""
    from faceclust.people import list_people

    rows = list_people(_catalog_path(catalog), include_hidden)
    if as_json:
        click.echo(json.dumps(rows))
        return
    from faceclust.progress import print_people

    print_people(rows)


def _done(message: str, decision) -> None:
    click.echo(printable(message))
    for note in decision.notes:
        click.echo(f"note: {printable(note)}", err=True)


@main.command()
@click.argument("person")
@click.argument("name")
@catalog_option
def name(person, name, catalog):
    """Give PERSON (an id or a current name) the name NAME."""
    from faceclust.people import name_person

    decision = name_person(_catalog_path(catalog), person, name)
    _done(f"person {decision.person} is now {name.strip()!r}", decision)


@main.command()
@click.argument("target")
@click.argument("others", nargs=-1, required=True)
@option("--force", is_flag=True,
              help="Merge even when OTHERS have names of their own (TARGET's name is kept; the others are dropped).")
@catalog_option
def merge(target, others, force, catalog):
    """Merge OTHERS into TARGET (ids or names): they are the same person."""
    from faceclust.people import merge_people

    decision = merge_people(_catalog_path(catalog), target, list(others), force=force)
    _done(f"merged into person {decision.person}", decision)


@main.command()
@click.argument("face", type=click.IntRange(min=1))
@click.argument("person")
@catalog_option
def move(face, person, catalog):
    """Put FACE (a face id, see 'export') into PERSON; clustering keeps it there."""
    from faceclust.people import move_face

    decision = move_face(_catalog_path(catalog), face, person)
    _done(f"face {face} now belongs to person {decision.person}", decision)


@main.command()
@click.argument("face", type=click.IntRange(min=1))
@catalog_option
def reject(face, catalog):
    """"Not this person": FACE leaves its person and is never put back there."""
    from faceclust.people import reject_face

    decision = reject_face(_catalog_path(catalog), face)
    _done(f"face {face} removed from person {decision.person} for good", decision)


@main.command()
@click.argument("person")
@option("--show", is_flag=True, help="Show a hidden person again.")
@catalog_option
def hide(person, show, catalog):
    """Hide PERSON (strangers) from people lists, albums and reports."""
    from faceclust.people import hide_person

    decision = hide_person(_catalog_path(catalog), person, hidden=not show)
    _done(f"person {decision.person} is {'shown' if show else 'hidden'}", decision)


@main.command()
@catalog_option
@option("--limit", type=click.IntRange(min=1), default=None, help="Show only the newest entries.")
@json_option
def history(catalog, limit, as_json):
    """List the decisions (name, merge, move, reject, hide) and clustering runs, newest first;
    'faceclust undo' reverts them."""
    from faceclust.people import history as read_history

    rows = read_history(_catalog_path(catalog), limit)
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no decisions or clustering runs yet")
    for row in rows:
        state = f"  (undone by #{row['undone_by']})" if row["undone_by"] else ""
        click.echo(printable(f"#{row['id']:<5} {row['at']}  {row['description']}{state}"))


@main.command()
@click.argument("entry", type=click.IntRange(min=1), required=False)
@catalog_option
@json_option
def undo(entry, catalog, as_json):
    """Revert the last decision or clustering run still in effect, or with ENTRY every one from
    history entry ENTRY on (see 'faceclust history'). Merges come apart exactly."""
    from faceclust.people import undo as undo_entries

    result = undo_entries(_catalog_path(catalog), entry)
    if as_json:
        click.echo(json.dumps({"undone": result.undone, "rows_restored": result.rows_restored,
                               "rows_lost": result.rows_lost}))
        return
    for row in result.undone:
        click.echo(printable(f"undone #{row['id']}: {row['description']}"))
    if result.rows_lost:
        click.echo(f"note: {result.rows_lost} faces could not be put back: their photos changed or "
                   "went since", err=True)


@main.command()
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@catalog_option
def backup(destination, catalog):
    """Copy the catalog to DESTINATION, consistent even while another faceclust run writes to it
    (SQLite's online backup). Restore by using the copy as --catalog."""
    from faceclust.catalog import backup_catalog

    size = backup_catalog(_catalog_path(catalog), destination)
    click.echo(f"catalog backed up to {printable(destination)} ({size / 2**20:.1f} MiB)")


@main.command()
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
    from faceclust.output.albums import write_albums

    summary = write_albums(_catalog_path(catalog), out, mode, include_unknown, skip_duplicates).as_dict()
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"{summary['people']} people in {printable(out)}: {summary['added']} added, "
                   f"{summary['removed']} removed, {summary['kept']} unchanged")
    _print_album_problems(summary)
    _exit_for_problems(summary)


@main.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@catalog_option
def report(out, catalog):
    """Write a self-contained HTML page OUT with a row of face thumbnails per person."""
    from faceclust.output.report import write_report

    shown = write_report(_catalog_path(catalog), out)
    click.echo(f"{shown} people in {printable(out)}")


@main.command()
@click.argument("labelled_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@catalog_option
@json_option
def evaluate(labelled_dir, catalog, as_json):
    """Score the people against LABELLED_DIR, a folder per identity that was scanned and clustered.

    Prints BCubed and pairwise precision/recall/F1, NMI, people vs identities, and VAL@FAR
    (1e-3, 1e-2). Each photo's label goes to one face; other faces are unscored bystanders.
    """
    from faceclust.evaluate import evaluate_library

    result = evaluate_library(_catalog_path(catalog), labelled_dir)
    if as_json:
        click.echo(json.dumps(result))
        return
    for key, value in result.items():
        click.echo(f"{key:32s} {value:.4f}" if isinstance(value, float) else printable(f"{key:32s} {value}"))


def _register_find_commands() -> None:
    from faceclust.find_cli import COMMANDS
    from faceclust.train_cli import train

    for command in COMMANDS:
        main.add_command(command)
    main.add_command(train)


_register_find_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
