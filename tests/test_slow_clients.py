"""Slow, greedy and malformed clients against a real ``onyproxy serve`` over real sockets:
header and body deadlines, the connection cap, and aiohttp's own 400s as JSON."""

from __future__ import annotations

import json
import socket
import time

import pytest
from serve_process import GatewayProcess, post_json

pytestmark = pytest.mark.slow

CONFIG = {
    "providers": {"mock": {"type": "mock"}},
    "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
}
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "ping"}]}
PARTIAL = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Slow: 1\r\n"
WAIT_S = 30  # how long the test waits for the gateway to act, never a measured duration


@pytest.fixture
def gateway(tmp_path):
    started: list[GatewayProcess] = []

    def start(**server) -> GatewayProcess:
        process = GatewayProcess({**CONFIG, "server": server}, tmp_path)
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


def connect(gateway: GatewayProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT_S)
    return sock


def answer(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def split(response: bytes) -> tuple[str, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return head.decode("latin-1"), json.loads(body)


def test_200_slowloris_connections_are_closed_at_the_header_deadline(gateway):
    server = gateway(header_timeout_s=1)
    socks = [connect(server) for _ in range(200)]
    for sock in socks:
        sock.sendall(PARTIAL)
    trickler = connect(server)
    trickler.sendall(PARTIAL)
    closed = False
    deadline = time.monotonic() + WAIT_S
    while not closed and time.monotonic() < deadline:  # a header line now and then
        try:
            trickler.sendall(b"X-More: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        time.sleep(0.2)
    trickler.close()
    assert closed, "a client trickling header lines kept its connection"
    for sock in socks:
        response = answer(sock)
        head, body = split(response)
        assert head.startswith("HTTP/1.1 408") and body["error"]["code"] == "header_timeout"
        sock.close()
    assert post_json(server.url("/v1/chat/completions"), CHAT)[0] == 200


def test_a_body_that_stops_arriving_ends_the_request(gateway):
    server = gateway(body_timeout_s=1)
    sock = connect(server)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\":")
    assert b"200 OK" not in answer(sock)  # closed, the request never ran
    sock.close()


def test_beyond_max_connections_a_new_connection_is_refused(gateway):
    server = gateway(max_connections=3)
    held = [connect(server) for _ in range(3)]
    for sock in held:
        sock.sendall(PARTIAL)
    extra = connect(server)  # accepted after the three: the listen queue is first in, first out
    head, body = split(answer(extra))
    extra.close()
    assert head.startswith("HTTP/1.1 503") and body["error"]["code"] == "too_many_connections"
    for sock in held:
        sock.close()
    deadline = time.monotonic() + WAIT_S
    while post_json(server.url("/healthz"), {})[0] not in (200, 405):
        assert time.monotonic() < deadline


@pytest.mark.parametrize("request_bytes", [
    b"GET /v1/models HTTP/1.1\r\nHost: g\r\nX-Evil\x01: secret-value-4711\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: g\r\nX-Bad: secret-value-4711\x00\r\n\r\n",
    b"G\x01T /secret-value-4711 HTTP/1.1\r\nHost: g\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: g\r\nContent-Length: secret-value-4711\r\n\r\n",
])
def test_malformed_requests_get_json_that_echoes_nothing(gateway, request_bytes):
    server = gateway()
    sock = connect(server)
    sock.sendall(request_bytes)
    response = answer(sock)
    sock.close()
    head, body = split(response)
    assert head.split()[1] == "400"
    assert "content-type: application/json" in head.lower()
    assert body["error"]["type"] == "invalid_request_error"
    assert b"secret-value-4711" not in response and b"Evil" not in response


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout_s(gateway):
    server = gateway(keepalive_timeout_s=1)
    sock = connect(server)
    body = json.dumps(CHAT).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Type: "
                 b"application/json\r\nContent-Length: " + str(len(body)).encode() +
                 b"\r\n\r\n" + body)
    response = answer(sock)  # the answer, then the close once the connection idles
    sock.close()
    assert response.startswith(b"HTTP/1.1 200") and b"echo: ping" in response
