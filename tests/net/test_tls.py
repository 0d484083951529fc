"""kiln's HTTP clients verify TLS as httpx does, but read the CA store only when TLS is used.

A loopback HTTPS server with a certificate from a CA made in the test: trusted through
``SSL_CERT_FILE`` it answers; with the default store, or under another host name, the
handshake fails. A plain-HTTP client never parses a CA certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kiln.errors import EnvironmentProblem, TransportError
from kiln.net import http_client


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificates(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("kiln test CA"))
        .issuer_name(_name("kiln test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


def _serve(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ca, cert, key = _certificates(tmp_path_factory.mktemp("tls"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for address in _serve(server):
        yield address, ca


@pytest.fixture(scope="module")
def plain_server() -> Iterator[str]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Hello))


def _ca_count(client: httpx.Client) -> int:
    # httpx keeps the pool and its SSL context private (BaseTransport declares neither)
    context = client._transport._pool._ssl_context  # type: ignore[attr-defined]
    return int(context.cert_store_stats()["x509_ca"])


def test_plain_http_never_reads_the_ca_store(plain_server: str) -> None:
    with http_client() as client:
        assert client.get(f"http://{plain_server}/").content == b"hello"
        assert _ca_count(client) == 0


def test_https_verifies_against_the_configured_ca(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, ca = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with http_client() as client:
        assert client.get(f"https://{address}/").content == b"hello"
        assert _ca_count(client) == 1  # the test CA, read at the handshake


def test_https_with_an_untrusted_ca_fails(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, _ = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with http_client() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        client.get(f"https://{address}/")
    assert _ca_count(client) > 100  # certifi's bundle was loaded, and does not name our CA


def test_https_under_another_name_fails(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, ca = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    port = address.rsplit(":", 1)[1]
    with http_client() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        client.get(f"https://localhost:{port}/")  # the certificate names 127.0.0.1 only


@pytest.mark.parametrize("content", [None, b"not a certificate\n"], ids=["missing", "not-pem"])
def test_a_broken_ca_setting_is_a_clear_error_not_a_network_fault(
    tls_server: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: bytes | None,
) -> None:
    address, _ = tls_server
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_bytes(content)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with http_client() as client, pytest.raises(EnvironmentProblem) as caught:
        client.get(f"https://{address}/")
    assert f"SSL_CERT_FILE={bundle}" in str(caught.value)
    assert not isinstance(caught.value, TransportError)  # not retried as a network fault
