"""Export the catalog's faces: one row per face (CSV or JSON Lines), descriptors as .npy."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from faceclust.errors import FaceclustError

COLUMNS = ["photo", "face_id", "left", "top", "right", "bottom", "score", "person", "taken_at"]
FORMATS = ("csv", "jsonl")


def face_rows(catalog, model_id: str | None) -> Iterator[tuple[dict, bytes | None]]:
    from faceclust.records import iso_time

    dates = catalog.photo_dates()
    for face_id, path, left, top, right, bottom, score, vector, person in catalog.iter_faces(model_id):
        row = {"photo": path, "face_id": face_id, "left": round(left, 1), "top": round(top, 1),
               "right": round(right, 1), "bottom": round(bottom, 1), "score": round(score, 4),
               "person": "" if person is None else person, "taken_at": iso_time(dates.get(path)) or ""}
        yield row, vector


def export_faces(catalog, out: IO[str], fmt: str = "csv", model_id: str | None = None,
                 embeddings_path: Path | None = None) -> int:
    """Write one row per face of the catalog's existing photos; return the row count.

    With ``embeddings_path`` the descriptors from ``model_id`` go to a float32 ``.npy`` in the
    same row order (a face without one gets a row of NaN, so rows stay aligned).
    """
    if fmt not in FORMATS:
        raise FaceclustError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n") if fmt == "csv" else None
    if writer:
        writer.writeheader()
    vectors: list[bytes | None] = []
    count = 0
    for row, vector in face_rows(catalog, model_id):
        if writer:
            writer.writerow(row)
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        vectors.append(vector)
        count += 1
    if embeddings_path is not None:
        from faceclust.files import atomic_file

        with atomic_file(embeddings_path) as handle:
            np.save(handle, _stack(vectors))
    return count


def _stack(vectors: list[bytes | None]) -> np.ndarray:
    dim = next((len(v) // 4 for v in vectors if v), 128)
    out = np.full((len(vectors), dim), np.nan, np.float32)
    for i, v in enumerate(vectors):
        if v:
            out[i] = np.frombuffer(v, "<f4")
    return out


def export_library(catalog_path, out: "Path | IO[str]", fmt: str = "csv",
                   embeddings_path: Path | None = None) -> int:
    """Export the catalog's faces (its current model's descriptors) to a stream, or to the file
    ``out``, written whole or not at all (as it goes: never held in memory). Returns the row
    count."""
    import io

    from faceclust.catalog import Catalog, protected_outputs
    from faceclust.faces.embed import catalog_model
    from faceclust.files import atomic_file

    with Catalog(catalog_path, create=False) as catalog:
        for target in (out, embeddings_path):
            if isinstance(target, (str, Path)):
                protected_outputs(catalog, target)
        model_id = catalog_model(catalog).model_id
        if not isinstance(out, (str, Path)):
            return export_faces(catalog, out, fmt, model_id, embeddings_path)
        with atomic_file(out) as raw:
            # Photo paths byte for byte: a name that is not UTF-8 keeps its own bytes.
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
            count = export_faces(catalog, text, fmt, model_id, embeddings_path)
            text.flush()
            text.detach()  # the atomic file closes the handle
    return count
