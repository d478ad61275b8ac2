"""People: who is who among the catalog's faces.

* ``cluster``: clustering descriptors into groups (a subpackage: one file per method, shared
  constraints); knows nothing about photos beyond the photo of each face.
* ``stable``: clustering runs that keep people, names and decisions (:class:`PeopleClusterer`,
  :func:`cluster_library`), new faces recognised by their nearest named faces.
* ``decisions``: the user's decisions, their history and undo.

Imports faces (which model a catalog uses), catalog and the layers below.
"""

from __future__ import annotations

from faceclust.people.decisions import (
                                        Decision,
                                        hide_person,
                                        history,
                                        keep_apart,
                                        list_people,
                                        merge_people,
                                        move_face,
                                        move_faces,
                                        name_person,
                                        new_person,
                                        reject_face,
                                        reject_faces,
                                        sort_faces,
                                        undo,
)
from faceclust.people.stable import ClusterOptions, ClusterSummary, PeopleClusterer, cluster_library

__all__ = ["ClusterOptions", "ClusterSummary", "Decision", "PeopleClusterer", "cluster_library", "hide_person",
           "history", "keep_apart", "list_people", "merge_people", "move_face", "move_faces", "name_person", "new_person",
           "reject_face", "reject_faces", "sort_faces", "undo"]
