"""What travels is exactly git's "not ignored", minus untracked build dirs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ocm.mirror.select import select
from tests.support.git import git, make_repo, write_files


def _git_view(root: Path) -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return {os.fsdecode(p) for p in out.split(b"\0") if p}


def test_selection_is_gits_view_minus_untracked_build_dirs(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "r",
        files={
            ".gitignore": "*.log\n!important.log\nout/\n",
            "pkg/.gitignore": "*.tmp\n!keep.tmp\n",
            "pkg/deep/.gitignore": "/local-only\n",
            "node_modules/tracked-dep/index.js": "tracked\n",
            "src/main.py": "x\n",
        },
    )
    files = {
        "a.log": "ignored",
        "important.log": "negated",
        "out/bin": "ignored dir",
        "pkg/x.tmp": "ignored",
        "pkg/keep.tmp": "negated",
        "pkg/deep/local-only": "ign",
        "pkg/deep/other": "kept",
        "excluded-by-info.txt": "info/exclude",
        "node_modules/untracked.js": "build",
        "web/node_modules/a/b.js": "build",
        "web/dist/bundle.js": "build",
        "app/.next/x": "build",
        ".venv/bin/python": "build",
        "src/__pycache__/m.pyc": "build",
        ".turbo/cache": "build",
        "distance/ok.txt": "kept",
        "with space/ünï.txt": "kept",
        "empty": "",
    }
    write_files(root, files)
    (root / ".git/info/exclude").write_text("excluded-by-info.txt\n")
    os.symlink("src/main.py", root / "inside-link")
    os.symlink("/etc/hostname", root / "outside-link")
    os.symlink("../../elsewhere", root / "src/escaping-link")
    nested = make_repo(root / "nested-repo")
    assert nested.exists()

    selection = select(root)
    travelling = set(selection.files)
    build_dirs = (
        "node_modules/untracked.js",
        "web/node_modules/a/b.js",
        "web/dist/bundle.js",
        "app/.next/x",
        ".venv/bin/python",
        "src/__pycache__/m.pyc",
        ".turbo/cache",
    )
    assert travelling == _git_view(root) - set(build_dirs) - {"nested-repo/"}
    assert "node_modules/tracked-dep/index.js" in travelling  # tracked always travels
    assert {
        "important.log",
        "pkg/keep.tmp",
        "pkg/deep/other",
        "distance/ok.txt",
        "with space/ünï.txt",
        "empty",
        "inside-link",
        "outside-link",  # a symlink travels as one, wherever it points (as in git)
        "src/escaping-link",
    } <= travelling
    assert not travelling & {
        "a.log",
        "out/bin",
        "pkg/x.tmp",
        "pkg/deep/local-only",
        "excluded-by-info.txt",
    }
    assert selection.skipped == ["nested-repo/"]
    assert selection.links == {"inside-link", "outside-link", "src/escaping-link"}


def test_deleted_tracked_files_are_reported(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "r", files={"a.txt": "a\n", "b.txt": "b\n"})
    (root / "a.txt").unlink()
    selection = select(root)
    assert selection.deleted == ["a.txt"]
    assert selection.files == ["b.txt"]
    git(root, "status")


def test_tracked_files_that_changed_kind_are_looked_at(tmp_path: Path) -> None:
    """git's stat pass answers for unchanged files; a tracked file that became a link, or a
    directory, or vanished, is still judged on its own: one that became a directory is
    gone, and what it holds is untracked (as `git add -A` sees it)."""
    root = make_repo(
        tmp_path / "r", files={"keep.txt": "k\n", "link.txt": "l\n", "dir.txt": "d\n", "gone": "g"}
    )
    (root / "link.txt").unlink()
    os.symlink("/etc/passwd", root / "link.txt")
    (root / "dir.txt").unlink()
    (root / "dir.txt").mkdir()
    (root / "dir.txt/inner").write_text("untracked inside\n")
    (root / "gone").unlink()
    selection = select(root)
    assert "keep.txt" in selection.tracked
    assert "link.txt" in selection.tracked and selection.links == {"link.txt"}
    assert "dir.txt/inner" in selection.untracked
    assert selection.deleted == ["dir.txt", "gone"]
