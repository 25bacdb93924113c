"""The certificates every connection of the app checks providers against, loaded once per process.

httpx loads its certificate bundle again for every client it makes, about 50 ms of CPU each: a
connector, a token refresh and each step of a sign-in make one. The context is shared instead; an
``ssl.SSLContext`` may be used by many clients and threads at once.
"""

from __future__ import annotations

import ssl
import threading
from typing import Any

import httpx

_context: ssl.SSLContext | None = None
_lock = threading.Lock()


def tls_context() -> ssl.SSLContext:
    """httpx's own default context (certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set), made once."""
    global _context
    with _lock:
        if _context is None:
            _context = httpx.create_ssl_context()
        return _context


def verify_for(transport: Any) -> dict[str, Any]:
    """``verify=`` for a client: the shared context, unless a transport of the caller's own is given
    (in-process sandboxes and tests: there is no TLS to set up)."""
    return {} if transport is not None else {"verify": tls_context()}
