"""Commands that find things: verify two faces, search by face, find duplicates, calibrate.

Thin click commands (options default to None, one library call); the group in
``faceclust.cli`` registers them and turns FaceclustError into a message. Heavy modules are
imported inside commands. Shared options come from ``faceclust.cli.options``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from faceclust.cli.options import (
    Finite,
    catalog_option,
    detect_options,
    json_option,
    option,
    threads_option,
)
from faceclust.cli.options import catalog_path as _catalog_path
from faceclust.cli.options import given as _given
from faceclust.text import printable

# Model-dependent defaults, as the library sets them (faces.embed.Distances; a test checks them).
SAME_PERSON_DEFAULT = "the model's same-person distance: 0.65 for the fused descriptor, 0.6 for dlib's"
DUPLICATE_DEFAULT = "the model's: 0.3 for the fused descriptor, 0.25 for dlib's"

photo_argument = click.Path(exists=True, dir_okay=False, path_type=Path)


def _say(text: str, err: bool = False) -> None:
    """Echo a line that holds paths or names: control characters shown as escapes."""
    click.echo(printable(text), err=err)


def _detect(detector, min_face):
    from faceclust.faces.detect import DetectOptions

    return DetectOptions(**_given(detector=detector, min_face=min_face))


@click.command()
@threads_option
@click.argument("photo_a", type=photo_argument)
@click.argument("photo_b", type=photo_argument)
@option("--face", "faces", type=click.IntRange(min=0), multiple=True, metavar="N",
              help="Compare only face N of PHOTO_A (faces are numbered from 0, left to right); "
                   "give it twice to pick the face of PHOTO_B too.")
@option("--threshold", type=Finite(min=0, min_open=True), default=None, show_default=SAME_PERSON_DEFAULT,
              help="Same person below this distance.")
@option("--calibration", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Calibration file from 'faceclust calibrate' [default: the one shipped for the model].")
@option("--prior", type=Finite(0, 1, min_open=True, max_open=True), default=None,
              show_default="0.5", help="Prior probability that the two are the same person.")
@option("--model", default=None, metavar="MODEL.pt",
              help="Embed with a fine-tuned model from 'faceclust train' (its validated threshold scale "
                   "applies to the default threshold) [default: the pretrained model].")
@detect_options
@json_option
def verify(photo_a, photo_b, faces, threshold, calibration, prior, model, detector, min_face, as_json):
    """Are the faces in PHOTO_A and PHOTO_B the same person?

    For each pair of faces: their distance, the model's decision (same person below 0.6) and a
    calibrated probability that they are the same person. The photos need not be in a catalog.
    """
    from faceclust.find.verify import verify_photos

    if len(faces) > 2:
        raise click.UsageError("--face is given at most twice (a face of PHOTO_A, then of PHOTO_B)")
    picked = dict(zip(("face_a", "face_b"), faces))
    result = verify_photos(photo_a, photo_b, detect=_detect(detector, min_face),
                           **_given(threshold=threshold, calibration=calibration, prior=prior, model=model,
                                    **picked)).as_dict()
    if as_json:
        click.echo(json.dumps(result))
        return
    for key, name in (("photo_a", "A"), ("photo_b", "B")):
        photo = result[key]
        _say(f"{name}: {photo['path']} ({len(photo['faces'])} face{'s' if len(photo['faces']) != 1 else ''})")
    for pair in result["pairs"]:
        verdict = "same person" if pair["same"] else "different people"
        chance = "" if pair["probability"] is None else f"  P(same) {pair['probability']:.3f}"
        _say(f"A{pair['face_a']} vs B{pair['face_b']}: distance {pair['distance']:.3f}  {verdict}{chance}")
    calibrated = f"; probability calibrated on {result['calibration']}" if result["calibration"] else ""
    _say(f"threshold {result['threshold']:g}{calibrated}")
    if result["note"]:
        _say(f"note: {result['note']}", err=True)


@click.command()
@threads_option
@click.argument("photo", type=photo_argument, required=False)
@catalog_option
@option("--top", type=click.IntRange(min=1), default=None, show_default="10",
              help="Matches listed per face, nearest first.")
@option("--threshold", type=Finite(min=0, min_open=True), default=None, show_default=SAME_PERSON_DEFAULT,
              help="Only catalogued faces closer than this distance.")
@option("--person", default=None, help="Instead of a photo: list the photos of PERSON (an id or a name).")
@detect_options
@json_option
def search(photo, catalog, top, threshold, person, detector, min_face, as_json):
    """Find the people of PHOTO in the catalog: for each face, the catalogued faces and photos
    of the same person, nearest first.

    PHOTO need not be in the catalog. With --person, list a person's photos instead.
    """
    if (photo is None) == (person is None):
        raise click.UsageError("give a PHOTO to search with, or --person ID, not both")
    if person is not None:
        from faceclust.find.search import person_photos

        found = person_photos(_catalog_path(catalog), person)
        if as_json:
            click.echo(json.dumps(found))
            return
        _say(f"person {found['id']}{' ' + repr(found['name']) if found['name'] else ''}: "
                   f"{len(found['photos'])} photos")
        for row in found["photos"]:
            _say(row["photo"])
        return
    from faceclust.find.search import search_library

    result = search_library(_catalog_path(catalog), photo, detect=_detect(detector, min_face),
                            **_given(top=top, threshold=threshold)).as_dict()
    if as_json:
        click.echo(json.dumps(result))
        return
    for face in result["faces"]:
        who = face["person"]
        known = f"; person {who['id']}{' ' + repr(who['name']) if who['name'] else ''}" if who else ""
        _say(f"face {face['face']} {face['box']}: {len(face['photos'])} photos{known}")
        for row in face["photos"]:
            _say(f"  {row['distance']:.3f}  {row['photo']}")
    _say(f"searched {result['catalog_faces']} faces (threshold {result['threshold']:g})")


@click.command()
@threads_option
@catalog_option
@option("--face-distance", type=Finite(0, 2, min_open=True, max_open=True), default=None,
              show_default=DUPLICATE_DEFAULT,
              help="Faces closer than this are near-identical; it must be below the model's same-person distance.")
@json_option
def dedupe(catalog, face_distance, as_json):
    """Report duplicate photos and near-identical faces in the catalog. Reads only.

    Duplicates are photos with the same bytes, or with the same faces at the same places in a
    photo of the same shape (copies, resized or re-encoded, burst shots); a mirrored copy is
    not a duplicate. Nothing is deleted or moved; each group names the photo an album keeps.
    """
    from faceclust.cli.progress import ScanProgress
    from faceclust.find.dedupe import DedupeOptions, dedupe_library

    with ScanProgress(enabled=not as_json) as progress:
        report = dedupe_library(_catalog_path(catalog), DedupeOptions(**_given(face_distance=face_distance)),
                                progress=progress).as_dict()
    if as_json:
        click.echo(json.dumps(report))
        return
    for group in report["photo_groups"]:
        _say(f"{len(group['photos'])} photos, {group['reason']}:")
        for path in group["photos"]:
            _say(f"  {'keep' if path == group['keep'] else '    '}  {path}")
    _say(f"{report['duplicate_photo_groups']} groups of duplicate photos ({report['photos_to_leave_out']} "
               f"could be left out of albums), {report['near_identical_face_groups']} groups of near-identical "
               f"faces, among {report['photos']} photos and {report['faces']} faces in {report['seconds']:.1f} s")


@click.command()
@threads_option
@click.argument("labelled_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@catalog_option
@option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Write the calibration (JSON) to this file.")
@option("--features", type=click.Choice(["distance", "distance+squared", "distance+absdiff"]), default=None,
              show_default="distance", help="Pair features.")
@option("--max-negatives", type=click.IntRange(min=1), default=None, show_default="200000",
              help="Different-person pairs sampled; every same-person pair is used.")
@json_option
def calibrate(labelled_dir, catalog, out, features, max_negatives, as_json):
    """Fit the probability that verify prints, on LABELLED_DIR: a folder per person, scanned
    into the catalog. A photo's face stands for its folder's person: its only face, or of
    several, the one most like the folder's other photos.
    """
    from faceclust.find.calibration import calibrate_library

    summary = calibrate_library(_catalog_path(catalog), labelled_dir, out,
                                **_given(features=features, max_negatives=max_negatives))
    if as_json:
        click.echo(json.dumps(summary))
        return
    _say(f"calibration for {summary['model_id']} written to {out}: {summary['same_pairs']} same-person "
               f"and {summary['different_pairs']} different-person pairs of {summary['identities']} people, "
               f"Brier score {summary['fit_brier_even_odds']:.4f} on them (even odds)")


@click.command()
@threads_option
@catalog_option
@option("--limit", type=click.IntRange(min=1), default=None, show_default="20", help="Suggestions listed.")
@json_option
def suggest(catalog, limit, as_json):
    """Pairs of people who may be one person, faces of nobody that may be someone, and faces
    that may not be their person; the answer most likely to change something first. Answer
    with 'faceclust merge A B' / 'faceclust move FACE A' (yes), or 'faceclust apart A B' /
    'faceclust reject FACE --person A' (no: never asked again)."""
    from faceclust.find.suggest import suggest_library

    rows = [s.as_dict() for s in suggest_library(_catalog_path(catalog), limit or 20)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no suggestions: no two people look alike enough (or every such pair was answered)")
        return
    for row in rows:
        def who(k):
            return printable(f"person {row[k]}" + (f" ({row['name_' + k]!r})" if row["name_" + k] else ""))
        chance = "" if row["probability"] is None else f"{row['probability']:.0%} likely, "
        if row["kind"] == "member":  # a face of the person that may not be them
            click.echo(f"face {row['face']} of {who('a')}: {chance}the same person, {row['distance']:.3f} from its "
                       f"other faces on average; faceclust move {row['face']} {row['a']} (yes, keep it)  |  "
                       f"faceclust reject {row['face']}")
            continue
        if row["b"] is None:  # a face of nobody yet
            click.echo(f"face {row['face']} and {who('a')}: {chance}{row['distance']:.3f} from its faces on average; "
                       f"faceclust move {row['face']} {row['a']}  |  faceclust reject {row['face']} --person {row['a']}")
            continue
        click.echo(f"{who('a')} and {who('b')}: {chance}faces {row['distance']:.3f} apart on average "
                   f"({row['support']} close pairs); "
                   f"faceclust merge {row['a']} {row['b']}  |  faceclust apart {row['a']} {row['b']}")


COMMANDS = (verify, search, dedupe, calibrate, suggest)
