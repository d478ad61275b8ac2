"""``faceclust train``: labelled faces -> chips -> fine-tuned embedder -> checkpoint.

One library call per source: :func:`train_model` with ``data`` (a folder per person, scanned
into a private catalog under the cache folder, so a second run detects nothing) or ``catalog``
(the people the user named there).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from faceclust.files import cache_dir as default_cache_dir
from faceclust.train.data import (
    LabelledFaces,
    TrainingDataError,
    faces_from_folders,
    faces_from_people,
    load_chips,
)
from faceclust.train.trainer import Trainer, TrainOptions, TrainResult

TRAINED_EMBEDDER = "dlib-resnet"  # the network train fine-tunes


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_model(out: Path, *, data: Path | None = None, catalog: Path | None = None,
                options: TrainOptions | None = None, base: Path | None = None, cache_dir: Path | None = None,
                detect=None, progress=None, max_faces_per_person: int | None = None) -> dict:
    """Fine-tune the embedder on ``data`` or on ``catalog``'s named people; write ``out``.

    Returns the summary that is also stored in the checkpoint's metadata."""
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import ModelChoice, catalog_model
    from faceclust.faces.finder import FaceFinder
    from faceclust.scan.options import ScanOptions
    from faceclust.scan.scanner import scan_library
    from faceclust.train.data import MAX_FACES_PER_PERSON

    max_faces_per_person = MAX_FACES_PER_PERSON if max_faces_per_person is None else max_faces_per_person
    if max_faces_per_person < 2:
        raise ValueError("max_faces_per_person must be at least 2")
    if data is None and catalog is None:
        raise ValueError("give a folder of labelled photos (DATA, a sub-folder per person) or --catalog")
    if data is not None and catalog is not None:
        raise ValueError("give either a folder of labelled photos or --catalog, not both")
    from faceclust.photos.protect import protect_inputs

    protected = []  # what training reads must never be what it writes
    if catalog is not None:
        from faceclust.catalog import catalog_files

        protected = catalog_files(catalog)
    protect_inputs(out, protected)
    if data is not None and os.path.realpath(out).startswith(os.path.realpath(data).rstrip(os.sep) + os.sep):
        from faceclust.errors import OutputError

        raise OutputError(f"{out} is inside the labelled photos {data}; write the model somewhere else")
    options = options or TrainOptions()
    progress = progress or (lambda event: None)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "train"
    started = time.perf_counter()
    # Training fine-tunes dlib's ResNet (the fused default's first part; a fine-tuned model
    # replaces that part's weights when the catalog uses it).
    base_model = ModelChoice.resolve(TRAINED_EMBEDDER, base)
    if data is not None:
        data = Path(data)
        if not data.is_dir():
            raise TrainingDataError(f"{data} is not a folder; give a folder with one sub-folder of photos per person")
        source = cache_dir / f"{_key(os.path.abspath(data))}.sqlite"
        scan_options = ScanOptions(**({"detect": detect} if detect else {}),
                                   embedder=TRAINED_EMBEDDER, model=str(base) if base else TRAINED_EMBEDDER)
        scan_library(source, [data], scan_options, progress)
        with Catalog(source) as cat:
            faces = faces_from_folders(cat, data, base_model.model_id)
            counts = cat.counts()
        faces.info.update({"photos": counts["photos"], "unreadable_photos": counts["photos_with_errors"],
                           "photos_without_face": counts["photos"] - counts["photos_with_faces"]})
    else:
        source = Path(catalog)
        with Catalog(source, create=False) as cat:
            faces = faces_from_people(cat, catalog_model(cat).model_id, max_faces_per_person, options.seed)
    if len(faces.names) < 2:
        raise TrainingDataError(f"training needs at least 2 people with faces, found {len(faces.names)}; "
                                + ("name people with 'faceclust name'" if catalog else "give one folder per person"))
    finder = FaceFinder.create(detect, TRAINED_EMBEDDER)
    chips, ok = load_chips(faces, cache_dir / f"{_key(str(source.resolve()))}.chips.npz", finder,
                           progress=lambda done, total: progress(_chips_event(done, total)))
    if not ok.all():
        faces.info["unreadable_faces"] = int((~ok).sum())
        keep = np.flatnonzero(ok)
        faces, chips = faces.take(keep), chips[keep]
    if options.val_photos:
        train_rows, val_rows = faces.split_photos(options.val_photos, options.seed)
    else:
        held_out = options.val_identities
        if held_out is None:
            held_out = len(faces.names) // 5 if len(faces.names) >= 10 else 0
        train_rows, val_rows = faces.split(held_out, options.seed)
    train, val = faces.take(train_rows), faces.take(val_rows)
    train_chips, val_chips = chips[train_rows], chips[val_rows]

    from faceclust.models.resnet import load_resnet

    net = load_resnet(checkpoint=base)
    trainer = Trainer(net, options, progress)
    output_norm = net.output_norm or float(np.linalg.norm(trainer.embed(train_chips[:256]), axis=1).mean())
    result = trainer.fit(train_chips, train, val_chips if len(val) else None, val if len(val) else None)
    if result.interrupted and len(result.history) < 2:
        raise KeyboardInterrupt  # stopped before a single epoch: nothing worth writing
    summary = _summary(result, options, base_model, train, val, output_norm, time.perf_counter() - started)
    from faceclust.models.checkpoint import save_checkpoint

    save_checkpoint(out, result.state_dict, summary)
    summary["out"] = str(out)
    return summary


def _chips_event(done: int, total: int):
    from faceclust.scan.options import ProgressEvent

    return ProgressEvent("chips", done, total)


def _summary(result: TrainResult, options: TrainOptions, base_model, train: LabelledFaces,
             val: LabelledFaces, output_norm: float, seconds: float) -> dict:
    import torch

    from faceclust import __version__

    best, start = result.best, result.history[0]
    validated = "threshold" in best
    notes = []
    if not validated:
        notes.append("no held-out people: nothing was validated and the last epoch is kept; the default "
                     "distance thresholds apply unchanged")
    elif result.best_epoch == 0:
        notes.append("training did not improve on the held-out people: the checkpoint holds the starting weights")
    return {
        "base_model": base_model.model_id,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "faceclust": __version__, "torch": torch.__version__,
        "data": {"train": train.summary(), "held_out": val.summary() if len(val) else None,
                 "validation": "held-out photos of the trained people" if options.val_photos
                 else "held-out people"},
        "options": dataclasses.asdict(options),
        "history": result.history,
        "best_epoch": result.best_epoch,
        "before": start, "after": best,
        "threshold": best.get("threshold"), "base_threshold": start.get("threshold"),
        # Relative to the pretrained model: times the starting (--base) model's own scale.
        "distance_scale": base_model.distance_scale * (best.get("distance_scale", 1.0) if validated else 1.0),
        "output_norm": output_norm,
        "seconds": round(seconds, 1), "train_faces_per_second": round(result.faces_per_second, 1),
        "stopped_early": result.stopped_early, "interrupted": result.interrupted, "notes": notes,
    }
