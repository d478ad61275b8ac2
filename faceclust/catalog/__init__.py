"""The catalog: the only package that speaks SQL, and the FAISS index beside it.

SQLite in WAL mode. Photos, faces (box, score, landmarks), embeddings (float32 BLOB keyed by
model identity), scan runs and per-file errors, people and the user's decisions, and the
history that undoes them. The schema is versioned with ``PRAGMA user_version`` and numbered
migrations; each batch is one transaction, so a killed scan loses at most the batch in flight
and never leaves half a photo behind.

* ``base``: opening (migrations, read-only fallback), transactions, runs, errors, settings.
* ``photos``: writing scanned photos and their faces; ``faces``: reading faces back.
* ``people``: people, assignments, decisions; ``history``: the undoable history.
* ``browse``: bounded pages of people and faces for ``faceclust serve``.
* ``tags``: face tags read from XMP (their sources, the faces named from them).
* ``schema``, ``sql``: the migrations and shared SQL helpers; ``backup``: online backup.
* ``index``: the FAISS index (the only module that imports faiss).

Imports photos (to protect them from outputs) and the bottom layer.
"""

from __future__ import annotations

from faceclust.catalog.base import (
    CatalogBase,
    catalog_files,
    default_catalog_path,
    protected_outputs,
)
from faceclust.catalog.browse import BrowseMixin
from faceclust.catalog.faces import FacesMixin
from faceclust.catalog.history import HistoryMixin
from faceclust.catalog.people import PeopleMixin
from faceclust.catalog.photos import PhotosMixin
from faceclust.catalog.schema import MIGRATIONS, SCHEMA_VERSION
from faceclust.catalog.sql import sql_path
from faceclust.catalog.tags import TagsMixin

__all__ = ["Catalog", "MIGRATIONS", "SCHEMA_VERSION", "backup_catalog", "catalog_files", "default_catalog_path",
           "protected_outputs", "sql_path"]


class Catalog(PhotosMixin, FacesMixin, PeopleMixin, HistoryMixin, BrowseMixin, TagsMixin, CatalogBase):
    """An open catalog. Use as a context manager or call :meth:`close`."""


def backup_catalog(source, destination) -> int:
    """See :func:`faceclust.catalog.backup.backup_catalog`."""
    from faceclust.catalog.backup import backup_catalog as backup

    return backup(source, destination)
