"""The scan: photo files -> faces -> the catalog, incremental and resumable.

* ``scanner``: :class:`Scanner` and :func:`scan_library`, one scan of some folders.

Orchestration only: walking and decoding live in ``photos``, compute in ``faces``, SQL in
``catalog``.
"""
