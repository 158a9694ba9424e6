"""What a Manager repo may be named: the Manager's rule, which ``ocm push --create --name``
checks before it sends anything (a refused name otherwise came back after the upload)."""

from __future__ import annotations

import re

MAX_NAME = 100
# Matched with fullmatch: ``$`` alone would also accept a name ending in a newline.
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")
NAME_CHARACTERS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a repo name ("<what>; <what to do>"), or None when it can be."""
    if len(name) > MAX_NAME and NAME_CHARACTERS.fullmatch(name):
        # Only the length is wrong (every character is allowed): say so, not "use letters".
        return f"repo name {name[:20]!r}… is {len(name)} characters long; use {MAX_NAME} at most"
    if NAME_PATTERN.fullmatch(name) is None:  # the first character also rules out ``..``
        return f"invalid repo name {name!r}; use letters, digits, '.', '_' and '-'"
    if name.isdigit():
        # `repo remove 2`, `ocm use 2` and the like read digits as an id first: such a name
        # would let another repo be picked, or have its files deleted.
        return f"repo name {name!r} is all digits, which reads as a repo id; add a letter"
    return None
