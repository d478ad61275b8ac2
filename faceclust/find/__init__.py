"""Finding things among faces: verify two photos, search the catalog by face, find duplicates.

* ``verify``: are two photos' faces the same person (distance, decision, probability).
* ``calibration``: that probability, fitted on labelled photos (``calibration.json`` ships it).
* ``search``: the catalogued faces and photos of the people in a photo; a person's photos.
* ``dedupe``: duplicate photos and near-identical faces (reads only).

Imports evaluate, faces, catalog, photos and the layers below.
"""
