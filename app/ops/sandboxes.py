"""Embedded sandboxes: the demo's providers, served on 127.0.0.1 while the app runs.

A connection made against an embedded sandbox records the sandbox's state file; whenever the
app needs that connection again (another `sync`, the GUI, the scheduler) the sandbox is served
again from that file, so the demo keeps working across runs.
"""

from __future__ import annotations

import socket
import threading

from app.sandbox.registry import sandbox_class
from app.sandbox.server import RunningServer, serve

_running: dict[str, RunningServer] = {}
_lock = threading.Lock()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ensure(provider: str, state_file: str, *, port: int = 0, seed: str | None = None,
           limits_scale: float = 1.0) -> RunningServer:
    """Serve the sandbox whose state is in ``state_file`` (once per process); seed it if new.

    ``limits_scale`` raises its rate limits (the demo's Zoho Books, whose 100 calls a minute would
    otherwise make a first-time user wait three minutes for sample data).
    """
    with _lock:
        server = _running.get(state_file)
        if server is not None:
            return server
        cls = sandbox_class(provider)
        app = cls(state_file=state_file, **getattr(cls, "served_defaults", {}))
        if limits_scale != 1.0:
            app.scale_limits(limits_scale)
        if seed is not None:
            app.seed(seed)
            app.persist()
        server = serve(app, port=port if port and _port_free(port) else 0)
        _running[state_file] = server
        return server


# What a user would tell us about a sandbox's sample account, where no answer of the provider does: the
# Pipedrive sandbox is a company on the Growth plan (its budget is 30,000 tokens x 2 x its seats).
TOLD_OF_SAMPLE = {"pipedrive": {"plan": "growth"}}


def told_of_sample(provider: str) -> dict[str, str]:
    """Settings a sandbox connection starts with, as the user would give them for a real account."""
    return dict(TOLD_OF_SAMPLE.get(provider, {}))


def stop_all() -> None:
    with _lock:
        for server in _running.values():
            server.stop()
        _running.clear()
