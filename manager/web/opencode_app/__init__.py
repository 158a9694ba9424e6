"""OpenCode's own web app, served behind the console's sign-in on a listener of its own.

``relay`` answers each request of that listener; ``links`` makes the app's addresses, such as
``app_url_for`` for the console's link from a repo to its sessions.

Why a second listener (``--web-app-port``, by default the Manager's port + 1): the app, which
``opencode serve`` ships, talks to the server it was loaded from at that origin's root —
``/session``, ``/global/event``, ``/api/health``, ``/api/session/…`` — and some of those paths
are the Manager's own (``/api/health``) or may become so. A path prefix would need the app
rewritten; a second host name needs DNS and a cookie per host. A second port on the same host
gives the app a whole origin to itself, and the browser still sends the console's cookie there:
cookies are per host, not per port, and SameSite counts ports as the same site. So signing in
on the console signs in the app too, and signing out, or ``token rotate``, signs it out.
"""

from __future__ import annotations

from manager.web.opencode_app.links import app_url_for, encode_directory
from manager.web.opencode_app.relay import OpencodeWebApp

__all__ = ["OpencodeWebApp", "app_url_for", "encode_directory"]
