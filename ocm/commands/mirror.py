"""``ocm push`` / ``ocm pull`` (SPEC §6): not available in this build yet."""

from __future__ import annotations

from ocm.errors import OcmError


def push(*, force: bool, create: bool, yes: bool) -> int:
    raise OcmError("push is not available yet", "use `ocm-manager repo add` on the Manager")


def pull(*, force: bool) -> int:
    raise OcmError("pull is not available yet", "copy the files from the Manager by hand")
