"""A served sandbox keeps a client's connection for its next request (HTTP/1.1), as every provider's
servers do, and a stopped sandbox leaves no kept connection answering."""

from __future__ import annotations

import http.client

import httpx
import pytest

from app.sandbox.registry import sandbox_class
from app.sandbox.server import serve

JSON = {"Accept": "application/json"}  # Xero answers 406 to a client that does not ask for JSON


@pytest.fixture
def served():
    server = serve(sandbox_class("xero")())
    yield server
    server.stop()


def test_one_connection_carries_request_after_request(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        answers, sockets = [], []
        for _ in range(3):
            conn.request("GET", "/api.xro/2.0/Contacts", headers=JSON)
            resp = conn.getresponse()
            answers.append((resp.status, resp.getheader("Connection"), resp.read()))
            sockets.append(conn.sock)  # http.client opens a new one when the server closed the last
        assert all(status == 401 and close is None and body for status, close, body in answers)
        assert sockets[0] is not None and sockets == [sockets[0]] * 3
    finally:
        conn.close()


def test_a_post_body_is_read_whole_so_the_next_request_is_understood(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        conn.request("POST", "/api.xro/2.0/Contacts", body=b'{"Contacts": [' + b" " * 5000 + b"]}",
                     headers={**JSON, "Content-Type": "application/json"})
        assert conn.getresponse().read()
        conn.request("GET", "/api.xro/2.0/Invoices", headers=JSON)
        assert conn.getresponse().status == 401
    finally:
        conn.close()


def test_an_http_1_0_client_gets_one_answer_a_connection():
    server = serve(sandbox_class("xero")())
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
        conn.request("GET", "/api.xro/2.0/Contacts", headers=JSON)
        resp = conn.getresponse()
        assert resp.version == 10 and resp.getheader("Connection") == "close"
        resp.read()
        conn.close()
    finally:
        server.stop()


def test_a_stopped_sandbox_leaves_no_kept_connection_answering():
    server = serve(sandbox_class("xero")())
    client = httpx.Client(base_url=server.url, timeout=5, headers=JSON)
    try:
        assert client.get("/api.xro/2.0/Contacts").status_code == 401  # the connection is now kept
        server.stop()
        with pytest.raises(httpx.TransportError):  # as a provider's outage looks: nobody answers
            client.get("/api.xro/2.0/Contacts")
    finally:
        client.close()
