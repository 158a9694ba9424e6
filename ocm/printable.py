"""Text from elsewhere, made safe to show on a terminal.

What a Manager says (an error's sentence, a repo's name and branch, its version) and what a
checkout holds (a folder's name) reach the user's terminal. A control character in them could
move the cursor, clear the screen, retitle the window or write the clipboard (OSC 52), and a
direction override could show the words around it reversed, so that a line reads other than
it is. Each such character is shown as its escape instead (``\\x1b``, ``\\u202e``), the way git
quotes an odd file name. Everything else, other scripts and emoji included, is left as it is.
"""

from __future__ import annotations

# Embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): what reorders the
# text around it. The console shows them too, in its own way (manager/web/render.py).
DIRECTION_CONTROLS = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))

_ESCAPED = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in (
        *range(0x20),  # C0 controls: ESC starts every terminal sequence
        *range(0x7F, 0xA0),  # DEL and C1 controls (U+009B is a one-character CSI)
        *DIRECTION_CONTROLS,
        0x061C,  # the Arabic letter mark and the left-to-right and right-to-left marks
        0x200E,
        0x200F,
        0x2028,  # line and paragraph separators: a second line inside a one-line message
        0x2029,
    )
}


def printable(text: str) -> str:
    """``text`` with every terminal control and direction control shown as its escape."""
    return text.translate(_ESCAPED)


def cells(text: str) -> int:
    """How many columns ``text`` takes on a terminal: two for a wide character (CJK, most
    emoji), none for a combining mark or a format character, one for any other, so that
    columns of names in other scripts line up."""
    import unicodedata  # noqa: PLC0415 - for tables only: `ocm status` starts without it

    total = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in {"Mn", "Me", "Cf"}:
            continue
        total += 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1
    return total


def pad(text: str, width: int) -> str:
    """``text`` with spaces after it up to ``width`` terminal columns (:func:`cells`)."""
    return text + " " * (width - cells(text))
