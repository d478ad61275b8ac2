"""Faces: detect, align and embed, on pixels in memory. Pure compute: no files written, no SQL.

* ``detect``: face detectors, registered by name (``mmod``, ``hog``; ``yunet`` in ``yunet``).
* ``align``: 5-point landmarks and aligned chips.
* ``embed``: embedders, registered by name, and which model a catalog uses.
* ``finder``: :class:`FaceFinder`, detect -> landmarks -> chips -> embed for decoded photos.

Imports models, photos and the bottom layer.
"""
