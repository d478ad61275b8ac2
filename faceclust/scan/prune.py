"""Marking photos gone, with the safety of rclone's --max-delete: a folder whose photos mostly
vanished at once (an unmounted share, an emptied mount point) is kept unless --prune."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from faceclust.text import printable

# A scan that finds more than this share of a folder's catalogued photos missing, and more
# than this many, does not mark them gone without --prune (see Scanner._mark_gone).
PRUNE_SAFETY_SHARE = 0.5


PRUNE_SAFETY_COUNT = 5


class PruningMixin:
    """Photos that are no longer there, for :class:`~faceclust.scan.scanner.Scanner`."""

    def _mark_gone(self, roots: list[Path], seen: set[str], walk_errors) -> None:
        """Photos of ``roots`` that are no longer there are marked gone (their album entries
        go with them) -- unless too many vanished at once from one folder that is still
        there: more than PRUNE_SAFETY_SHARE of the catalogued photos under a root or any
        folder below it, and more than PRUNE_SAFETY_COUNT, looks like an unmounted share or an
        emptied mount point, not like deletions; they are kept unless ``prune`` (rclone's
        --max-delete is the model). A folder deleted as a whole is a deletion."""
        if self._walk_stalled:
            return  # the walk did not see everything: it says nothing about missing photos
        # Read the catalog again: rows re-pointed by a move now carry their new path.
        # A folder that could not be listed (an unmounted share, a permission change) says
        # nothing about its photos: they are not marked gone.
        blind = [str(e.path) for e in walk_errors]
        states = [s for s in self.catalog.photo_states().values() if s.status != "gone"]
        gone: set[int] = set()
        for root in roots:
            root_text = str(root)
            under = [s for s in states if _is_under(s.path, root_text)]
            vanished = [s for s in under
                        if s.path not in seen and not any(_is_under(s.path, b) for b in blind)
                        and not os.path.lexists(s.path)]  # still there (a skipped folder): leave it
            if not vanished:
                continue
            held, lost = Counter(), Counter()
            for s in under:
                held.update(_folders_between(s.path, root_text))
            for s in vanished:
                lost.update(_folders_between(s.path, root_text))
            emptied = {folder for folder, n in lost.items()
                       if n > PRUNE_SAFETY_COUNT and n > PRUNE_SAFETY_SHARE * held[folder] and os.path.isdir(folder)}
            kept = [s for s in vanished if emptied & set(_folders_between(s.path, root_text))]
            if kept and not self.options.prune:
                self.summary.kept_missing += len(kept)
                for folder in sorted(f for f in emptied if not any(f != g and _is_under(f, g) for g in emptied)):
                    self.summary.warnings.append(
                        f"{lost[folder]} of the {held[folder]} catalogued photos under {printable(folder)} are missing; "
                        "they were kept with their people and albums (an unmounted share or an emptied "
                        "folder looks like this). If they were deleted, run again with --prune.")
                kept_ids = {s.id for s in kept}
                vanished = [s for s in vanished if s.id not in kept_ids]
            gone.update(s.id for s in vanished)
        self.summary.gone = self.catalog.mark_gone(sorted(gone))


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _folders_between(path: str, root: str) -> list[str]:
    """The folders holding ``path``, from its own up to ``root`` (included)."""
    out = []
    folder = os.path.dirname(path)
    while _is_under(folder, root):
        out.append(folder)
        if folder == root.rstrip(os.sep) or os.path.dirname(folder) == folder:
            break
        folder = os.path.dirname(folder)
    return out
