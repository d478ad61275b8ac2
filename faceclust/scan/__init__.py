"""The scan: photo files -> faces -> the catalog, incremental and resumable.

* ``scanner``: :class:`Scanner` and :func:`scan_library`, one scan of some folders: which files
  are new or changed, decoding them on threads, detecting and embedding, batch commits.
* ``walker``: the folder walk under a watchdog, and other paths to catalogued files.
* ``prune``: photos that are gone, with the safety against unmounted shares.
* ``reembed``: new descriptors for faces found earlier, when the model changes.
* ``options``: what a scan is asked, and its progress events.

Orchestration only: walking and decoding live in ``photos``, compute in ``faces``, SQL in
``catalog``. Imports those and the bottom layer.
"""
