"""The proxy the environment names for the Manager (``https_proxy``, ``http_proxy``,
``all_proxy``, ``no_proxy``, either case), as ``opencode attach`` honours them too.

Kept apart from :mod:`ocm.transport` so that ``ocm status`` probes the Manager the way every
other command reaches it, without importing ``http.client``.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit


def proxy_for(scheme: str, host: str) -> tuple[str, int, bytes, str] | None:
    """(host, port, user:password, variable) of the proxy the environment names for
    ``scheme``; the variable is the one it came from, to name when the proxy fails."""
    if not any(key.lower() in (f"{scheme}_proxy", "all_proxy") for key in os.environ):
        return None
    import urllib.request  # noqa: PLC0415 - its proxy rules, only when a proxy is set

    if urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]
        return None
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    if not url:
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    credentials = b""
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return parts.hostname or "", parts.port or 80, credentials, _proxy_variable(scheme, url)


def _proxy_variable(scheme: str, url: str) -> str:
    """Which variable set ``url``: urllib prefers the lower-case spelling, and the scheme's
    own variable to ``all_proxy``."""
    for name in (f"{scheme}_proxy", "all_proxy"):
        for spelling in (name, name.upper()):
            if os.environ.get(spelling) == url:
                return spelling
    return f"{scheme}_proxy"
