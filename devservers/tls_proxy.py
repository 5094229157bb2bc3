"""A TLS-terminating reverse proxy that requires HTTP basic auth, in front of a real (plain HTTP) OpenSearch.

It stands in for what OpenChoreo runs (OpenSearch on `https://opensearch:9200` with the security plugin and a
self-signed certificate) without a secured cluster: the TLS handshake, the certificate and the 401 for wrong
credentials are real; everything authorised is forwarded unchanged to the real OpenSearch.

    cert, key = self_signed_cert(tmp_dir)
    async with TlsAuthProxy(opensearch_url, "admin", "secret", cert, key) as proxy:
        ... proxy.url ...   # https://127.0.0.1:<port>

The certificate makers are shared by every TLS test: `self_signed_cert` (a server certificate that is its own
CA), `make_ca` and `Ca.issue` (a CA and the server and client certificates it signs, for mutual TLS), and
`serving_tls` serves any ASGI app over HTTPS the way `observer up` does.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devservers.local import free_port
from serving import server

LOOPBACK = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
_SIGNING_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    """A certificate for `key`, valid from an hour ago for a day."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _common_name(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def write_pem(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    """`<name>.crt` and `<name>.key` (PKCS#8, unencrypted) in `directory`. Returns (cert, key)."""
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def self_signed_cert(directory: Path, common_name: str = "opensearch") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, usable as its own CA file. Returns (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _common_name(common_name)
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_SIGNING_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(LOOPBACK, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return write_pem(directory, "opensearch", cert, key)


@dataclass(frozen=True)
class Ca:
    """A certificate authority made for a test run (`make_ca`), which issues leaf certificates."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path

    def issue(self, directory: Path, name: str, *, client: bool) -> tuple[Path, Path]:
        """A leaf certificate signed by this CA: for a client (clientAuth) or for the server on 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(_common_name(name), self.cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if not client:
            builder = builder.add_extension(LOOPBACK, critical=False)
        return write_pem(directory, name, builder.sign(self.key, hashes.SHA256()), key)


def make_ca(directory: Path, name: str) -> Ca:
    """A CA certificate (it may sign leaves, not other CAs), written as `<name>.crt` / `<name>.key`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _common_name(name)
    cert = (
        _builder(subject, subject, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_SIGNING_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path, _ = write_pem(directory, name, cert, key)
    return Ca(key, cert, path)


@contextlib.contextmanager
def serving_tls(
    app: Any,
    certfile: Path,
    keyfile: Path | None = None,
    client_ca_file: Path | None = None,
    cert_reqs: ssl.VerifyMode = ssl.CERT_NONE,
) -> Iterator[str]:
    """The app over HTTPS on serving.server (the function `observer up` uses), on a free loopback port in a
    thread; with `client_ca_file` and `cert_reqs=ssl.CERT_REQUIRED`, mutual TLS. Yields the https URL."""
    port = free_port()
    running = server(
        app,
        "127.0.0.1",
        port,
        "warning",
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        ssl_ca_certs=client_ca_file,
        ssl_cert_reqs=cert_reqs,
    )
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the TLS test server did not start")
        time.sleep(0.01)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(timeout=10)


class TlsAuthProxy:
    """Counts what it saw: `authorised` requests forwarded, `refused` ones answered 401 as the OpenSearch
    security plugin does (`Unauthorized`, with a `WWW-Authenticate` challenge)."""

    def __init__(self, upstream: str, username: str, password: str, cert: Path, key: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self._expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.load_cert_chain(cert, key)
        self.authorised = 0
        self.refused = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> TlsAuthProxy:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self._runner, sock, ssl_context=self._ssl).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self._expected:
            self.refused += 1
            return web.Response(
                status=401, text="Unauthorized", headers={"WWW-Authenticate": 'Basic realm="OpenSearch Security"'}
            )
        self.authorised += 1
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "accept")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=await request.read(), headers=headers
        ) as answer:
            body = await answer.read()
            return web.Response(body=body, status=answer.status, content_type=answer.content_type)
