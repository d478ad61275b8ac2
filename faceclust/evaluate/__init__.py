"""Evaluation: how good the people are, against labelled photos.

* ``metrics``: BCubed, pairwise, NMI, VAL@FAR, label assignment (pure numpy).
* ``scoring``: a catalog's people against a folder-per-identity tree (``faceclust evaluate``).

Imports faces, catalog, photos and the layers below.
"""

from __future__ import annotations

from faceclust.evaluate.scoring import evaluate_catalog, evaluate_library, photo_label

__all__ = ["evaluate_catalog", "evaluate_library", "photo_label"]
