"""Score the catalog's people against a folder-per-identity tree that was scanned and clustered.

A photo's label is the first folder under the labelled root. Labels belong to photos: the label
goes to one face of each photo (the face whose person holds most other photos of that label;
ties: the largest), the other faces are bystanders, clustered but not scored.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from faceclust.errors import FaceclustError


def photo_label(path: str, root: str) -> str | None:
    """The identity folder of ``path`` under ``root``, or None when it is not inside a folder there."""
    if not path.startswith(root.rstrip(os.sep) + os.sep):
        return None
    parts = Path(path[len(root.rstrip(os.sep)) + 1:]).parts
    return parts[0] if len(parts) >= 2 else None


def evaluate_catalog(catalog, labelled_dir: Path, model_id: str) -> dict:
    from faceclust.evaluate.metrics import assign_labels, score_clustering, val_at_far

    roots = {os.path.abspath(labelled_dir), os.path.realpath(labelled_dir)}
    rows = catalog.person_faces()
    table = catalog.face_table(model_id)
    vector_of = {int(f): v for f, v in zip(table.face_ids, table.vectors)}
    photos, labels, preds, sizes, faces = [], [], [], [], []
    for person, face_id, path, left, top, right, bottom, _score in rows:
        label = next((lab for r in roots if (lab := photo_label(path, r)) is not None), None)
        if label is None or face_id not in vector_of:
            continue
        photos.append(path)
        labels.append(label)
        preds.append(-1 if person is None else person)
        sizes.append((right - left) * (bottom - top))
        faces.append(face_id)
    if not faces:
        raise FaceclustError(f"no catalogued face lies in a folder under {labelled_dir}; scan it first "
                             "(faceclust scan LABELLED_DIR) and cluster (faceclust cluster)")
    preds_a = np.array(preds, np.int64)
    scored = assign_labels(photos, labels, preds_a, sizes)
    truth = np.array(labels, dtype=object)[scored]
    result = score_clustering(truth, preds_a[scored])
    vectors = np.stack([vector_of[f] for f in np.array(faces)[scored]])
    for far, (val, threshold) in val_at_far(vectors, truth).items():
        result[f"val_at_far_{far:g}"] = val
        result[f"threshold_at_far_{far:g}"] = threshold
    labelled_photos = sum(1 for p in _image_files(labelled_dir))
    result.update({"labelled_photos": labelled_photos, "scored_faces": int(scored.sum()),
                   "bystander_faces": int(len(faces) - scored.sum()),
                   "labelled_photos_without_face": labelled_photos - len(set(photos))})
    return result


def _image_files(root: Path):
    from faceclust.photos.walk import walk_photos

    return walk_photos([Path(root)])


def evaluate_library(catalog_path, labelled_dir: Path, model_id: str | None = None) -> dict:
    from faceclust.catalog import Catalog
    from faceclust.faces.embed import catalog_model

    with Catalog(catalog_path, create=False) as catalog:
        return evaluate_catalog(catalog, Path(labelled_dir), model_id or catalog_model(catalog).model_id)
