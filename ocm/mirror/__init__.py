"""Mirroring a checkout between a laptop and the Manager (SPEC §6).

Shared by both sides, since each is sometimes the receiver: :mod:`select` (what travels),
:mod:`archive` (the tar stream, safe extraction), :mod:`state` (snapshots and markers),
:mod:`history` (importing commits, backups, stash), :mod:`swap` (switching the work tree),
:mod:`receive` (the whole receiving side) and :mod:`send` (the sending side).
Standard library and the ``git`` executable only.
"""
