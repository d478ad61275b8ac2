"""``faceclust train``: fine-tune the embedder by online triplet mining.

A standalone click command in the style of ``faceclust.cli`` (thin, options default to None,
one library call); the main group registers it.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from faceclust.cli.options import (
    Finite,
    detect_options,
    json_option,
    option,
    quiet_option,
    threads_option,
)
from faceclust.cli.options import given as _given


@click.command()
@threads_option
@click.argument("data", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@option("--catalog", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Train on the people named in this catalog (their rejected faces are negatives) "
                   "instead of a DATA folder.")
@option("--max-faces-per-person", type=click.IntRange(min=1), default=None, show_default="300",
              help="With --catalog: at most this many faces of each named person, drawn at random.")
@option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the fine-tuned model (MODEL.pt).")
@option("--epochs", type=click.IntRange(min=1), default=None, show_default="10",
              help="Most passes over the training faces.")
@option("--steps", "steps_per_epoch", type=click.IntRange(min=1), default=None,
              help="Batches per epoch [default: about one pass over the training faces].")
@option("--p", "p", type=click.IntRange(min=2), default=None,
              help="People per batch [default: 48, or every person with K faces when fewer].")
@option("--k", "k", type=click.IntRange(min=2), default=None, show_default="4", help="Faces per person in a batch.")
@option("--extras", type=click.IntRange(min=0), default=None, show_default="64",
              help="Random extra faces per batch, more negatives.")
@option("--margin", type=Finite(0, 4, min_open=True, max_open=True), default=None, show_default="0.2",
              help="Triplet margin α on squared distances.")
@option("--mining", type=click.Choice(["semihard", "hard", "all"]), default=None, show_default="semihard",
              help="Negatives per anchor-positive pair.")
@option("--lr", type=Finite(0, 1, min_open=True, max_open=True), default=None, show_default="1e-5",
              help="Learning rate.")
@option("--schedule", type=click.Choice(["cosine", "constant", "step"]), default=None, show_default="cosine",
              help="Learning-rate schedule.")
@option("--weight-decay", type=Finite(min=0), default=None, show_default="1e-4", help="AdamW weight decay.")
@option("--freeze", type=click.IntRange(0, 14), default=None, show_default="7",
              help="Residual blocks (of 14, with the stem) left unchanged.")
@option("--augment/--no-augment", default=None,
              help="Flip, small rotations, shifts, colour jitter [default: off, see docs/training.md].")
@option("--distill", type=Finite(min=0), default=None, show_default="1",
              help="Weight of keeping descriptors close to the starting model's; 0 turns it off.")
@option("--optimizer", type=click.Choice(["adamw", "sgd"]), default=None, show_default="adamw", help="Optimizer.")
@option("--patience", type=click.IntRange(min=1), default=None, show_default="4",
              help="Stop after this many epochs without a better validation.")
@option("--val-identities", type=click.IntRange(min=0), default=None,
              help="People held out for validation [default: a fifth of them when there are 10 or more].")
@option("--val-photos", type=Finite(0, 1, min_open=True, max_open=True), default=None,
              help="Instead, hold out this fraction of every person's photos (e.g. 0.3): validates on new "
                   "photos of the people trained on.")
@option("--seed", type=int, default=None, show_default="0", help="Random seed.")
@option("--base", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from this fine-tuned model instead of the pretrained one.")
@option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where detected faces and chips are cached [default: ~/.cache/faceclust/train].")
@detect_options
@quiet_option
@json_option
def train(data, catalog, max_faces_per_person, out, epochs, steps_per_epoch, p, k, extras, margin, mining, lr, schedule, weight_decay,
          freeze, augment, distill, optimizer, patience, val_identities, val_photos, seed, base, cache_dir, detector, min_face, quiet, as_json):
    """Fine-tune the face embedder on labelled people (FaceNet's triplet loss).

    DATA is a folder with one sub-folder of photos per person; or give --catalog to learn from
    the people you named. Some people are held out to validate each epoch; the best epoch is
    written to --out. Use the model with 'faceclust scan PHOTOS --model MODEL.pt'.
    """
    from faceclust.cli.progress import TrainProgress, print_train_summary
    from faceclust.faces.detect import DetectOptions
    from faceclust.train.run import train_model
    from faceclust.train.trainer import TrainOptions

    options = TrainOptions(**_given(epochs=epochs, steps_per_epoch=steps_per_epoch, p=p, k=k, extras=extras,
                                    margin=margin, mining=mining, lr=lr, schedule=schedule, weight_decay=weight_decay,
                                    freeze=freeze, augment=augment, distill=distill, optimizer=optimizer,
                                    patience=patience,
                                    val_identities=val_identities, val_photos=val_photos, seed=seed))
    detect = DetectOptions(**_given(detector=detector, min_face=min_face)) if detector or min_face else None
    with TrainProgress(enabled=not quiet and not as_json) as progress:
        summary = train_model(out, data=data, catalog=catalog, options=options, base=base, cache_dir=cache_dir,
                              detect=detect, progress=progress, max_faces_per_person=max_faces_per_person)
    if as_json:
        click.echo(json.dumps(summary, default=str))
    elif not quiet:
        print_train_summary(summary)


COMMANDS = (train,)
