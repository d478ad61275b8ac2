"""Commands about people: cluster, list, and the user's decisions (name, merge, move, reject,
hide), their history and undo."""

from __future__ import annotations

import json

import click

from faceclust.cli.options import (
    Finite,
    Registered,
    catalog_option,
    json_option,
    option,
    quiet_option,
    threads_option,
)
from faceclust.cli.options import catalog_path as _catalog_path
from faceclust.cli.options import given as _given
from faceclust.cli.show import done
from faceclust.text import printable


@click.command()
@threads_option
@catalog_option
@option("--method", type=Registered("faceclust.people.cluster:clusterers",
                                          ("adaptive", "agglomerative", "hdbscan", "chinese-whispers", "kmeans")),
              default=None, show_default="the model's: adaptive for the fused descriptor, agglomerative for dlib's",
              help="Clusterer.")
@option("--min-faces", type=click.IntRange(min=1), default=None, show_default="2",
              help="Faces a group needs to become a person; smaller groups stay unknown.")
@option("--min-face-size", type=Finite(min=0), default=None, show_default="0",
              help="Leave faces narrower than this many pixels out of clustering.")
@option("--min-score", type=Finite(), default=None, help="Leave faces detected below this score out.")
@option("--threshold", type=Finite(0, 2, min_open=True), default=None,
              help="Distance threshold of the method: a chord distance between L2-normalised "
                   "descriptors, so at most 2 [default: the method's, scaled for the model: 0.56 for the "
                   "fused descriptor, 0.35 for dlib's].")
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
    from faceclust.cli.progress import ScanProgress

    with ScanProgress(enabled=not quiet and not as_json) as progress:
        summary = cluster_library(_catalog_path(catalog), options, progress=progress).as_dict()
    if as_json:
        click.echo(json.dumps(summary))
    elif not quiet:
        click.echo(f"{summary['people']} people, {summary['assigned']} faces assigned, "
                   f"{summary['unknown']} unknown ({summary['mode']}: {summary['new_people']} new people, "
                   f"{summary['recognized']} faces recognised) in {summary['seconds']:.1f} s")


@click.command()
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
    from faceclust.cli.progress import print_people

    print_people(rows)


@click.command()
@click.argument("person")
@click.argument("name")
@catalog_option
def name(person, name, catalog):
    """Give PERSON (an id or a current name) the name NAME."""
    from faceclust.people import name_person

    decision = name_person(_catalog_path(catalog), person, name)
    done(f"person {decision.person} is now {name.strip()!r}", decision)


@click.command()
@click.argument("target")
@click.argument("others", nargs=-1, required=True)
@option("--force", is_flag=True,
              help="Merge even when OTHERS have names of their own (TARGET's name is kept; the others are dropped).")
@catalog_option
def merge(target, others, force, catalog):
    """Merge OTHERS into TARGET (ids or names): they are the same person."""
    from faceclust.people import merge_people

    decision = merge_people(_catalog_path(catalog), target, list(others), force=force)
    done(f"merged into person {decision.person}", decision)


@click.command()
@click.argument("person_a")
@click.argument("person_b")
@catalog_option
def apart(person_a, person_b, catalog):
    """PERSON_A and PERSON_B (ids or names) are two people: 'suggest' never offers them again."""
    from faceclust.people import keep_apart

    decision = keep_apart(_catalog_path(catalog), person_a, person_b)
    done(f"kept apart: person {decision.person} and {person_b}", decision)


@click.command()
@click.argument("face", type=click.IntRange(min=1))
@click.argument("person")
@catalog_option
def move(face, person, catalog):
    """Put FACE (a face id, see 'export') into PERSON; clustering keeps it there."""
    from faceclust.people import move_face

    decision = move_face(_catalog_path(catalog), face, person)
    done(f"face {face} now belongs to person {decision.person}", decision)


@click.command()
@click.argument("face", type=click.IntRange(min=1))
@option("--person", default=None, help="Not this person (an id or a name) [default: the face's own].")
@catalog_option
def reject(face, person, catalog):
    """"Not this person": FACE leaves its person (or never joins PERSON) and is never put there."""
    from faceclust.people import reject_face

    decision = reject_face(_catalog_path(catalog), face, person)
    done(f"face {face} is not person {decision.person}, for good", decision)


@click.command()
@click.argument("person")
@option("--show", is_flag=True, help="Show a hidden person again.")
@catalog_option
def hide(person, show, catalog):
    """Hide PERSON (strangers) from people lists, albums and reports."""
    from faceclust.people import hide_person

    decision = hide_person(_catalog_path(catalog), person, hidden=not show)
    done(f"person {decision.person} is {'shown' if show else 'hidden'}", decision)


@click.command()
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


@click.command()
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


COMMANDS = (cluster, people, name, merge, apart, move, reject, hide, history, undo)
