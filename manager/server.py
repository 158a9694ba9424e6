"""Waitress: the one place the HTTP server is configured and started."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

from manager.config import Settings
from manager.token_watch import TokenWatch

SWITCH_INTERVAL = 0.0005
SWEEP_INTERVAL = 1

log = logging.getLogger(__name__)


def http_url(host: str, port: int) -> str:
    """``http://host:port``, an IPv6 address in brackets (``http://[::1]:5003``)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is on this machine only."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        return all(
            ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found
        )
    except (OSError, ValueError):
        return False


def warn_unless_loopback(host: str) -> None:
    if not is_loopback(host):
        log.warning(
            "serving plain HTTP on %s, beyond 127.0.0.1: the token crosses the network in"
            " clear text unless a TLS proxy fronts the Manager (README: Running the Manager"
            " on a VM)",
            host,
        )


def worker_threads(settings: Settings) -> int:
    """Every open event stream holds a waitress thread for its whole life, so streams get
    threads of their own (the proxy refuses more than ``max_streams``) and ``threads`` stay
    free for ordinary requests: a full house of streams never makes a request queue."""
    return settings.threads + settings.max_streams


def connection_limit(settings: Settings) -> int:
    # A TUI holds one event stream plus a few keep-alive connections for its JSON calls;
    # waitress counts its own sockets too.
    return max(1000, 4 * worker_threads(settings))


def waitress_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "threads": worker_threads(settings),
        "connection_limit": connection_limit(settings),
        # select() fails above ~1000 descriptors; poll() has no such limit.
        "asyncore_use_poll": True,
        # No channel_request_lookahead: it doubles waitress' CPU per request; the proxy
        # notices a client that went away by peeking at its socket (manager.proxy.upstream).
        "ident": "ocm-manager",
        # Waitress buffers a whole request body before the app runs, even an
        # unauthenticated one (FIELD-NOTES): cap it.
        "max_request_body_size": settings.max_upload_bytes,
        # Uploads (ocm push) are hundreds of MB: 8 KB reads cost 0.76 s per 230 MB, 256 KB
        # reads 0.2-0.3 s (bench/mirror.py). Reads return what is there, so SSE is unaffected.
        "recv_bytes": 256 * 1024,
        "clear_untrusted_proxy_headers": True,
        **(
            {
                "trusted_proxy": settings.trusted_proxy,
                "trusted_proxy_headers": {"x-forwarded-proto", "x-forwarded-for"},
            }
            if settings.trusted_proxy
            else {}
        ),
        # How often waitress sweeps its connections; the guard (manager.connection_guard)
        # closes silent and stalled ones then, so this bounds how late that happens.
        "cleanup_interval": SWEEP_INTERVAL,
    }


# Descriptors kept for what is not a connection: the database, git, logs, temp files.
OTHER_FILES = 256
FEWEST_CONNECTIONS = 16


def files_wanted(options: dict[str, Any]) -> int:
    return 2 * options["connection_limit"] + 2 * options["threads"] + OTHER_FILES


def raise_open_file_limit(wanted: int) -> int | None:
    """Each proxied request holds two sockets (client and OpenCode): lift a low soft limit.
    The soft limit now (None: unlimited, or not POSIX)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def fitting_connection_limit(options: dict[str, Any], open_files: int | None) -> int:
    """The connection limit, lowered to what the open-file limit allows: waitress must
    reach its limit (where the connection guard makes room) before ``accept`` fails for
    want of descriptors, which nobody would make room for."""
    limit = int(options["connection_limit"])
    if open_files is None:
        return limit
    fits = (open_files - 2 * options["threads"] - OTHER_FILES) // 2
    return max(FEWEST_CONNECTIONS, min(limit, fits))


def web_app_listener(app: Any, settings: Settings, server: Any, options: dict[str, Any]) -> Any:
    """OpenCode's web app on a port of its own (manager.web.opencode_app), or None.

    It joins the main server's event loop and worker threads: one thread budget, so the
    app's event streams and the TUIs' share ``max_streams`` as the proxy counts them."""
    web_app = getattr(app, "opencode_app", None)
    if web_app is None or settings.web_app_port is None:
        return None
    from waitress.server import create_server

    try:
        return create_server(
            web_app,
            map=server._map,
            _dispatcher=server.task_dispatcher,
            **(options | {"port": settings.web_app_port}),
        )
    except OSError as exc:
        server.close()
        # The filename names the listener for the caller's message.
        raise OSError(
            exc.errno, exc.strerror, f"{settings.host}:{settings.web_app_port} (--web-app-port)"
        ) from None


def _watch_token(app: Any) -> TokenWatch | None:
    services = getattr(app, "services", None)
    registry = getattr(services, "registry", None)
    if services is None or registry is None:
        return None
    watch = TokenWatch(registry.token_hash, read_sign_ins=registry.live_web_sessions)
    services.token_watch = watch  # sign-ins and sign-outs refresh it (manager.web.signin)
    return watch


def _guard(
    server: Any, web_app_server: Any, tokens: TokenWatch, settings: Settings, cookie_name: str
) -> None:
    """Both listeners, each with its own credentials and one upload budget between them."""
    from manager import connection_guard

    guard = connection_guard.install(server, connection_guard.ManagerToken(tokens), settings)
    if guard is not None and web_app_server is not None:
        signed_in = connection_guard.SignInCookie(tokens, cookie_name)
        connection_guard.install(web_app_server, signed_in, settings, guard.budget)


def serve(app: Any, settings: Settings, on_stop: Callable[[], None] | None = None) -> None:
    """Bind, say where (tests and scripts parse this line), and serve until interrupted.

    ``on_stop`` runs before waitress closes: it ends the open streams, which would otherwise
    hold their threads (and the shutdown) for waitress' whole grace period.
    """
    from waitress.server import create_server

    # Waitress hands every request from its socket thread to a worker and back. With the
    # default 5 ms GIL switch interval, a thread woken by I/O can wait that long behind a
    # busy one; 0.5 ms measured 10-25 % more proxied requests per second with four clients.
    sys.setswitchinterval(SWITCH_INTERVAL)
    options = waitress_options(settings)
    open_files = raise_open_file_limit(files_wanted(options))
    options["connection_limit"] = fitting_connection_limit(options, open_files)
    server = create_server(app, **options)
    web_app_server = web_app_listener(app, settings, server, options)
    tokens = _watch_token(app)
    if tokens is not None:
        _guard(server, web_app_server, tokens, settings, app.services.cookie_name)
    proxy = getattr(app, "proxy", None)
    if proxy is not None:
        from manager.proxy.loop import install

        install(server, proxy)
        if tokens is not None:
            tokens.on_change(proxy.end_streams_of_other_tokens)
    if tokens is not None:
        tokens.start()
    try:
        # All before the "listening on" line, which tells tests and scripts that start-up
        # is over: a page asked for right after it links the web app already.
        warn_unless_loopback(settings.host)
        port = getattr(server, "effective_port", settings.port)
        ports = getattr(getattr(app, "services", None), "ports", {})
        ports["console"] = port
        if web_app_server is not None:
            ports["opencode_app"] = web_app_server.effective_port
            print(
                "ocm-manager: OpenCode's web app (behind the console's sign-in) on"
                f" {http_url(settings.host, web_app_server.effective_port)}",
                file=sys.stderr,
                flush=True,
            )
        print(
            f"ocm-manager: listening on {http_url(settings.host, port)}",
            file=sys.stderr,
            flush=True,
        )
        # server.run(), except that on_stop runs before waitress waits for its workers.
        server.asyncore.loop(
            timeout=server.adj.asyncore_loop_timeout,
            map=server._map,
            use_poll=server.adj.asyncore_use_poll,
        )
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if tokens is not None:
            tokens.stop()
        if on_stop is not None:
            on_stop()
        server.task_dispatcher.shutdown()
        server.close()
        if web_app_server is not None:
            web_app_server.close()
