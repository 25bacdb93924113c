"""Run a sandbox over real HTTP on 127.0.0.1, or in-process through httpx."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

import httpx

from app.sandbox.base import DropConnection, SandboxApp, SimulatedTimeout


class _SignalServerHandler(ServerHandler):
    """wsgiref turns every app exception into a 500; let the fault signals through instead."""

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
    timeout_delay = 3.0

    def log_message(self, *args: Any) -> None:
        pass

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _SignalServerHandler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self
        try:
            handler.run(self.server.get_app())
        except DropConnection:
            self._drop()
        except SimulatedTimeout:
            time.sleep(self.timeout_delay)
            self._drop()

    def _drop(self) -> None:
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
        except OSError:
            pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


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
