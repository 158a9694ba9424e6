"""Installer: puts `ocm` on PATH as ``~/.local/bin/ocm`` (SPEC section 7).

Standard library only, and importable by any Python 3: it runs before anything is
installed, and the client imports ``install.locate`` for ``ocm status``.
"""
