"""Outputs a user looks at: albums, the HTML report, exports. The only writers of user-visible
files, always where the user asked, whole or not at all, never over what faceclust reads.

* ``album_plan``: which folder and link each photo gets; ``albums``: writing them into OUT.
* ``report``: one self-contained HTML page; ``export``: one row per face.

Imports find (duplicates), catalog, photos and the layers below.
"""
