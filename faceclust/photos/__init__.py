"""Photos: finding photo files, reading them safely, decoding them to pixels.

* ``walk``: the photo files under some folders (hidden, NAS system and album folders skipped).
* ``read``: a file's bytes without ever blocking forever (FIFOs, hung shares).
* ``decode``: bytes to RGB pixels at a working size, EXIF orientation applied.
* ``formats``: which file names are photos, and the optional openers (HEIC).
* ``protect``: outputs never overwrite what faceclust reads.

Imports only the bottom layer (errors, records, files, text). No models, no SQL.
"""
