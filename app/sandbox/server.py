"""Run a sandbox over real HTTP on 127.0.0.1, or in-process through httpx."""

from __future__ import annotations

import contextlib
import io
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, cast
from wsgiref.headers import Headers
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

import httpx

from app.sandbox.base import DropConnection, SandboxApp, SimulatedTimeout


class _SignalServerHandler(ServerHandler):
    """wsgiref turns every app exception into a 500; let the fault signals through instead. It answers in
    the request's own HTTP version, so an HTTP/1.1 client keeps its connection for the next request, as
    every provider's servers allow."""

    closing = False  # say "Connection: close": this connection ends after this answer
    headers: Headers  # set by wsgiref's start_response (not in its stubs)

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        if self.closing or "Content-Length" not in self.headers:
            self.headers["Connection"] = "close"
            self.closing = True

    def run(self, application: Any) -> None:
        try:
            self.setup_environ()
            self.result = application(self.environ, self.start_response)
            self.finish_response()
        except (DropConnection, SimulatedTimeout):
            raise
        except Exception:  # noqa: BLE001 - wsgiref reports it as a 500, as it always did
            try:
                self.handle_error()
            except Exception:
                self.close()
                raise


class _Handler(WSGIRequestHandler):
    """One connection: its requests one after another (HTTP/1.1 keep-alive) until the client closes it,
    asks to, or sits idle for ``idle_seconds``; a fault signal drops it as a failing server would."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # an answer goes out at once, not after the client's delayed ACK
    wbufsize = -1  # its status line, headers and body in one send (flushed once the answer is written)
    timeout_delay = 3.0
    idle_seconds = 30.0  # longer than any client keeps an idle connection (httpx: 5 s), so the client closes first

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.idle_seconds)
        cast(_ThreadingServer, self.server).opened(self.connection)

    def finish(self) -> None:
        cast(_ThreadingServer, self.server).closed(self.connection)
        with contextlib.suppress(OSError):  # the client may be gone already
            super().finish()

    def handle(self) -> None:
        try:  # http.server's own loop (wsgiref's handler serves one request and stops)
            BaseHTTPRequestHandler.handle(self)
        except (TimeoutError, ConnectionError):  # idle too long, or the client went away
            self.close_connection = True

    def handle_one_request(self) -> None:
        self.close_connection = True
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:  # the client closed the connection
            return
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():  # (sets close_connection from the request's version and headers)
            return
        if self.request_version != "HTTP/1.1":
            self.close_connection = True  # an HTTP/1.0 client: one request a connection, as before
        body = self.rfile
        if self.headers.get("Content-Length"):  # the whole body read now: the next request starts after it
            body = io.BytesIO(self.rfile.read(int(self.headers["Content-Length"])))
        elif self.command not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            self.close_connection = True  # a body of unknown length: this connection ends with it
        handler = _SignalServerHandler(body, self.wfile, self.get_stderr(), self.get_environ(), multithread=True)
        handler.request_handler = self
        handler.http_version = "1.1" if self.request_version == "HTTP/1.1" else "1.0"
        handler.closing = self.close_connection
        try:
            handler.run(self.server.get_app())
        except DropConnection:
            self._drop()
        except SimulatedTimeout:
            time.sleep(self.timeout_delay)
            self._drop()
        else:
            self.wfile.flush()
            self.close_connection = handler.closing  # (it started as close_connection)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
        except OSError:
            pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def opened(self, conn: socket.socket) -> None:
        with self._open_lock:
            self._open.add(conn)

    def closed(self, conn: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(conn)

    def server_close(self) -> None:
        """A stopped server leaves no connection open: a client's kept connection sees it gone, as it
        would see a provider's outage."""
        super().server_close()
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@dataclass
class RunningServer:
    app: SandboxApp
    url: str
    _server: _ThreadingServer
    _thread: threading.Thread

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.app.persist()


def serve(app: SandboxApp, port: int = 0, host: str = "127.0.0.1", timeout_delay: float = 3.0) -> RunningServer:
    """Serve ``app`` on host:port in a background thread; port 0 picks a free one."""
    handler = type("Handler", (_Handler,), {"timeout_delay": timeout_delay})
    server = _ThreadingServer((host, port), handler)
    server.set_app(app)
    app.public_url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return RunningServer(app, f"http://{host}:{server.server_address[1]}", server, thread)


class InProcessTransport(httpx.WSGITransport):
    """httpx transport straight into a sandbox, turning its fault signals into httpx errors."""

    def __init__(self, app: SandboxApp) -> None:
        super().__init__(app=app)
        self.sandbox = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except DropConnection as exc:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request) from exc
        except SimulatedTimeout as exc:
            raise httpx.ReadTimeout("simulated timeout", request=request) from exc
