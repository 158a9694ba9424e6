"""Mirroring a checkout between a laptop and the Manager (SPEC §6), as git objects.

Shared by both sides, since each is sometimes the receiver: :mod:`select` (what travels),
:mod:`snapshot` (the checkout's state as one commit), :mod:`pack` (what a side has, the
pack of what the other lacks, taking a pack in), :mod:`checks` (what an incoming snapshot
may hold), :mod:`checkout` (writing its changed files into staging), :mod:`state`
(snapshots and markers), :mod:`history` (branches, backups, stash, index), :mod:`swap`
(switching the work tree), :mod:`receive` (the whole receiving side), :mod:`send` (the
sending side) and :mod:`wire` (the format's version and names). All git work goes through
:mod:`gitcmd`. Standard library and the ``git`` executable only.
"""
