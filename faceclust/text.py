"""Text that is safe to show: names and paths as a terminal, a report or a folder listing gets them.

The catalog keeps names and paths exactly as they are (a file name need not be UTF-8; a
person's name may hold anything a user typed). What is *shown* must not be able to move the
cursor, recolour the terminal, reorder the line (bidi overrides such as U+202E) or fail to
encode (a non-UTF-8 file name arrives in Python as lone surrogates, os.fsdecode's
``surrogateescape``). These helpers make the shown form; they never change what is stored.
"""

from __future__ import annotations

import os
import unicodedata

# Characters that change how the text around them is laid out without being visible:
# the bidi embeddings, overrides and isolates, the marks, and line/paragraph separators.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def is_unsafe(ch: str) -> bool:
    """Control characters (C0, DEL, C1), bidi controls, and lone surrogates."""
    return (unicodedata.category(ch) in ("Cc", "Cs") or ch in BIDI_CONTROLS)


def printable(text: object) -> str:
    """``text`` with every unsafe character written as a visible escape (``\\x1b``,
    ``\\u202e``, ``\\xe9`` for an undecodable byte of a file name); other text unchanged."""
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if all(not is_unsafe(ch) for ch in text):
        return text
    return "".join(_escape(ch) if is_unsafe(ch) else ch for ch in text)


def strip_unsafe(text: str) -> str:
    """``text`` without its unsafe characters (for folder names and labels)."""
    return "".join(ch for ch in text if not is_unsafe(ch))
