"""TLS on both sides: ``onyproxy serve`` with ``server.tls`` refuses TLS 1.2 by default and
serves TLS 1.3; upstream certificates are verified; plain http:// to a remote provider is
warned about at start."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from serve_process import GatewayProcess, post_json

CONFIG = {
    "providers": {"mock": {"type": "mock"}},
    "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
}
CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "ping"}]}


# --- a self-signed certificate for 127.0.0.1, made by the test -------------------------------

def make_certificate(directory: Path) -> tuple[Path, Path]:
    """(cert, key) PEM files, with the ``cryptography`` package if installed, else openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _with_cryptography(cert, key)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor openssl is available")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True)
    return cert, key


def _with_cryptography(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


def client_context(cafile: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that trusts ``cafile`` and speaks exactly TLS ``version``."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.minimum_version = context.maximum_version = version
    return context


def handshake(port: int, context: ssl.SSLContext) -> str:
    """The negotiated protocol version; raises ``ssl.SSLError`` when refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return tls.version() or ""


@pytest.fixture
def https_gateway(tmp_path, certificate):
    started: list[GatewayProcess] = []
    cert, key = certificate

    def start(**tls) -> GatewayProcess:
        config = {**CONFIG, "server": {"tls": {"cert_file": str(cert), "key_file": str(key),
                                               **tls}}}
        gateway = GatewayProcess(config, tmp_path,
                                 ssl_context=client_context(cert, ssl.TLSVersion.TLSv1_3))
        started.append(gateway)
        gateway.wait_ready()
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


# --- the client side: onyproxy serve with server.tls -----------------------------------------

@pytest.mark.slow
def test_https_serves_tls13_and_refuses_tls12_by_default(https_gateway, certificate):
    gateway = https_gateway()
    cert, _ = certificate
    assert gateway.url("/").startswith("https://")
    assert handshake(gateway.port, client_context(cert, ssl.TLSVersion.TLSv1_3)) == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        handshake(gateway.port, client_context(cert, ssl.TLSVersion.TLSv1_2))
    with urllib.request.urlopen(gateway.url("/healthz"), timeout=5,
                                context=gateway.ssl_context) as resp:
        assert resp.status == 200
    assert "listening on https://" in gateway.log()


@pytest.mark.slow
def test_https_answers_carry_hsts_and_no_versions(https_gateway):
    gateway = https_gateway()
    for path in ("/healthz", "/no/such/page"):
        request = urllib.request.Request(gateway.url(path))
        try:
            with urllib.request.urlopen(request, timeout=5,
                                        context=gateway.ssl_context) as resp:
                headers = resp.headers
        except urllib.error.HTTPError as exc:
            headers = exc.headers
        assert headers["Strict-Transport-Security"] == "max-age=31536000"
        assert headers.get_all("Server") == ["onyproxy"]


@pytest.mark.slow
def test_requests_over_tls13_reach_the_model(https_gateway):
    gateway = https_gateway()
    https = urllib.request.HTTPSHandler(context=gateway.ssl_context)
    urllib.request.install_opener(urllib.request.build_opener(https))
    try:
        status, body, _ = post_json(gateway.url("/v1/chat/completions"), CHAT)
    finally:
        urllib.request.install_opener(None)
    assert status == 200 and body["choices"][0]["message"]["content"] == "echo: ping"


@pytest.mark.slow
def test_min_version_12_is_honoured_when_set_on_purpose(https_gateway, certificate):
    gateway = https_gateway(min_version="1.2")
    cert, _ = certificate
    assert handshake(gateway.port, client_context(cert, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"


# --- the upstream side -----------------------------------------------------------------------

async def test_upstream_certificates_are_verified(gateway, aiohttp_server, certificate):
    """A provider behind a certificate nobody vouches for is unreachable, not trusted."""
    from fakes.openai_upstream import FakeOpenAI, create_fake_openai_app

    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    fake = FakeOpenAI()
    upstream = await aiohttp_server(create_fake_openai_app(fake), ssl=server_side)
    assert str(upstream.make_url("/")).startswith("https://")
    gw = await gateway({
        "providers": {"self-signed": {"type": "openai", "api_key": "sk-x",
                                      "base_url": str(upstream.make_url("/v1"))}},
        "models": {"m": {"targets": [{"provider": "self-signed", "model": "gpt-4o-mini"}]}}})
    async with aiohttp.ClientSession() as http, http.post(
            gw.make_url("/v1/chat/completions"),
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status == 502
        assert "Could not reach the provider 'self-signed'" in (await resp.json())[
            "error"]["message"]
    assert fake.requests == []  # the handshake failed before any request was sent


@pytest.mark.parametrize(("base_url", "warned"), [
    ("http://api.example.com/v1", True),
    ("http://10.0.0.7:8000/v1", True),
    ("http://127.0.0.1:11434/v1", False),
    ("http://localhost:8000/v1", False),
    ("http://[::1]:8000/v1", False),
    ("https://api.example.com/v1", False),
])
async def test_plain_http_to_a_remote_provider_is_warned_about_at_start(
        gateway, caplog, base_url, warned):
    caplog.set_level(logging.WARNING, logger="onyproxy.providers")
    api_key = "sk-proj-" + "s" * 40
    await gateway({"providers": {"vllm": {"type": "openai", "base_url": base_url,
                                          "api_key": api_key}},
                   "models": {"m": {"targets": [{"provider": "vllm", "model": "llama"}]}}})
    warnings = [r.getMessage() for r in caplog.records if r.name == "onyproxy.providers"]
    assert len(warnings) == int(warned)
    if warned:
        assert "provider 'vllm' uses plain http://" in warnings[0]
    assert api_key not in caplog.text
