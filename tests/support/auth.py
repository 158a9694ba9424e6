"""Authorization headers as a client sends them: the Manager token as Bearer, or as the
password of Basic auth (the way `opencode attach` sends it)."""

from __future__ import annotations

import base64


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(password: str, user: str = "opencode") -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}
