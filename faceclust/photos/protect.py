"""What faceclust writes never replaces what it reads: the catalog, the files beside it, photos."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from faceclust.text import printable


def protect_inputs(output: str | os.PathLike, protected: "Iterable[str | os.PathLike]" = ()) -> None:
    """Refuse an output path that would overwrite what faceclust reads: one of ``protected``
    (a catalog and the files beside it, a catalogued photo), or any existing file named like a
    photo. Raises :class:`OutputError`."""
    from faceclust.errors import OutputError
    from faceclust.photos.formats import IMAGE_EXTENSIONS

    real = os.path.realpath(output)
    for path in protected:
        if real == os.path.realpath(path):
            raise OutputError(f"{printable(output)} is {printable(path)}, which faceclust reads (a catalog, its "
                              "index or a photo); choose another file to write")
    if os.path.lexists(output) and Path(output).suffix.lower() in IMAGE_EXTENSIONS:
        raise OutputError(f"{printable(output)} exists and is named like a photo; faceclust never writes over "
                          "photos, choose another file name")
