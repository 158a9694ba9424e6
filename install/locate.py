"""Where the running ``ocm`` lives and what ``~/.local/bin/ocm`` points to, for ``ocm status``.

Cheap on purpose (no subprocess, no package metadata, only ``os`` and ``sys``): ``ocm status``
promises to be fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from install.paths import bin_dir as default_bin_dir
from install.paths import on_path, path_export_line, shell_rc_file

NAME = "ocm"

ABSENT = "absent"  # no ~/.local/bin/ocm
HERE = "here"  # it runs this ocm (a link to it, or pip's own script)
ELSEWHERE = "elsewhere"  # it runs another ocm, or is something else entirely
DANGLING = "dangling"  # a link to something that no longer exists (an uninstalled venv)


def describe(
    *,
    argv0: str | None = None,
    prefix: str | None = None,
    bin_dir: Path | None = None,
    python: str | None = None,
) -> dict[str, object]:
    """Describe the running installation; every argument defaults to the running process.

    Keys: ``python``, ``prefix`` (the environment), ``script`` (its ``ocm`` console script,
    or None when run as ``python -m ocm`` from an environment without one), ``link`` (the
    path of ``~/.local/bin/ocm``), ``linkState`` (absent / here / elsewhere / dangling),
    ``linkTarget`` (what the link points to, or the file itself), ``binDirOnPath``, and
    ``fix`` (one sentence saying what to do, or None when all is well).
    """
    python = python if python is not None else (sys.executable or "python3")
    prefix = prefix if prefix is not None else sys.prefix
    argv0 = argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")
    directory = bin_dir if bin_dir is not None else default_bin_dir()
    script = _running_script(argv0, prefix)
    link = directory / NAME
    state, target = _link_state(link, script)
    visible = on_path(directory)
    return {
        "python": python,
        "prefix": prefix,
        "script": script,
        "link": str(link),
        "linkState": state,
        "linkTarget": target,
        "binDirOnPath": visible,
        "fix": _fix(state, link, target, python, visible),
    }


def summary_lines(info: dict[str, object]) -> list[str]:
    """Two human lines for ``ocm status``: where ocm runs from, and the link's state."""
    lines = [f"installed: {info['script'] or info['prefix']} (python {info['python']})"]
    state, link, target = info["linkState"], info["link"], info["linkTarget"]
    if state == HERE:
        text = f"{link} runs this ocm"
        if not info["binDirOnPath"]:
            text += f", but {Path(str(link)).parent} is not on PATH"
    elif state == ABSENT:
        text = f"{link} does not exist"
    elif state == DANGLING:
        text = f"{link} points to {target}, which no longer exists"
    else:
        text = f"{link} runs another ocm ({target})"
    lines.append(f"link: {text}")
    if info["fix"]:
        lines.append(f"fix: {info['fix']}")
    return lines


def _running_script(argv0: str, prefix: str) -> str | None:
    # Started through a console script (or a link to one), argv[0] is that path;
    # started as `python -m ocm` it is ocm/__main__.py, and the environment's script
    # (if any) is the one a link should reach.
    if os.path.basename(argv0) == NAME and os.path.isfile(argv0):
        return os.path.realpath(argv0)
    candidate = os.path.join(prefix, "bin", NAME)
    return os.path.realpath(candidate) if os.path.isfile(candidate) else None


def _link_state(link: Path, script: str | None) -> tuple[str, str | None]:
    if not os.path.lexists(link):
        return ABSENT, None
    if os.path.islink(link):
        target = os.path.normpath(os.path.join(link.parent, os.readlink(link)))
        if not os.path.exists(link):
            return DANGLING, target
    else:
        target = str(link)
    if script is not None and os.path.realpath(link) == script:
        return HERE, target
    return ELSEWHERE, target


def _fix(state: str, link: Path, target: str | None, python: str, visible: bool) -> str | None:
    if state == DANGLING:
        return (
            f"{link} points to {target}, which no longer exists; run `python3 -m install` "
            f"from a checkout or remove the link (`rm {link}`)"
        )
    if state == ELSEWHERE:
        return f"to make {link} run this ocm, run `{python} -m install link --force`"
    if state == ABSENT:
        return f"to put this ocm on PATH, run `{python} -m install link`"
    if not visible:
        return f"add `{path_export_line(link.parent)}` to {shell_rc_file()}"
    return None
