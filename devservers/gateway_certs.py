"""Certificates for the cluster-gateway tests, made at test time on top of `devservers.tls_proxy.make_ca`, and
the rig that runs a real gateway over them (`gateway_rig`).

The gateway needs three trust domains (CPN §3): the server CA agents verify the gateway with, one client CA per
plane CR (its `spec.clusterAgent.clientCA`), and a separate internal CA for callers of the 8444 API. Besides the
good certificates, the tests need bad ones the CA helpers do not make: an expired client certificate.
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controlplane.gateway.server import Listeners, start
from controlplane.gateway.service import Gateway, OnChange
from devservers.tls_proxy import Ca, make_ca, write_pem
from tunnel.tls import client_context, gateway_server_context, internal_server_context


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key on disk."""

    cert: Path
    key: Path


def ca_pem(ca: Ca) -> str:
    """The CA certificate as the PEM text a plane CR's `spec.clusterAgent.clientCA.value` holds."""
    return ca.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def issue(ca: Ca, directory: Path, name: str, *, client: bool) -> KeyPair:
    """A valid leaf (clientAuth, or serverAuth for 127.0.0.1/localhost) signed by `ca`."""
    cert, key = ca.issue(directory, name, client=client)
    return KeyPair(cert, key)


def issue_expired_client(ca: Ca, directory: Path, name: str) -> KeyPair:
    """A clientAuth leaf signed by `ca` whose validity ended yesterday: chains fine, refused only for its dates."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=3))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_path, key_path = write_pem(directory, name, cert, key)
    return KeyPair(cert_path, key_path)


@dataclass(frozen=True)
class GatewayPki:
    """The gateway's server CA and certificate, and the internal CA with one caller certificate."""

    server_ca: Ca
    server: KeyPair
    internal_ca: Ca
    internal_client: KeyPair


def gateway_pki(directory: Path) -> GatewayPki:
    """Fresh server and internal trust domains in `directory` (distinct CAs, as upstream's chart makes them)."""
    server_ca = make_ca(directory, "gateway-ca")
    internal_ca = make_ca(directory, "gateway-internal-ca")
    return GatewayPki(
        server_ca=server_ca,
        server=issue(server_ca, directory, "gateway-server", client=False),
        internal_ca=internal_ca,
        internal_client=issue(internal_ca, directory, "controller-manager", client=True),
    )


# ---------------------------------------------------------------------------------------------- the gateway rig


class DictTrust:
    """PlaneTrust backed by a dict: (planeType, planeID) -> {CR key: [CA PEM]}. Real code, not a mock: it is the
    same lookup the store-backed trust does, over a table the test edits (a plane CR's clientCA changing)."""

    def __init__(self) -> None:
        self.planes: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.failing = False

    def set(self, plane_type: str, plane_id: str, key: str, *cas: Ca) -> None:
        """The plane CR `key` of that plane now trusts exactly `cas` (none: the CR exists with no usable CA)."""
        self.planes.setdefault((plane_type, plane_id), {})[key] = [ca_pem(ca) for ca in cas]

    def remove(self, plane_type: str, plane_id: str, key: str) -> None:
        """The plane CR `key` is gone."""
        self.planes.get((plane_type, plane_id), {}).pop(key, None)

    def all_pems(self) -> list[str]:
        """Every CA of every plane, for the agent listener's handshake."""
        return [pem for crs in self.planes.values() for pems in crs.values() for pem in pems]

    async def client_cas(self, plane_type: str, plane_id: str) -> Mapping[str, list[str]]:
        if self.failing:
            raise ConnectionError("the store is unavailable")
        return {key: list(pems) for key, pems in self.planes.get((plane_type, plane_id), {}).items()}


@dataclass
class GatewayRig:
    """A running gateway on loopback (both listeners, real TLS) and what a test needs to reach it."""

    directory: Path
    pki: GatewayPki
    trust: DictTrust
    gateway: Gateway
    listeners: Listeners

    def agent_url(self, plane_type: str = "observabilityplane", plane_id: str = "obs-a") -> str:
        return f"wss://127.0.0.1:{self.listeners.agent_port}/ws?planeType={plane_type}&planeID={plane_id}"

    def internal_url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.listeners.internal_port}{path}"

    def client_ssl(self, cert: KeyPair | None) -> ssl.SSLContext:
        """A client context that verifies the gateway, presenting `cert` (or no certificate at all)."""
        if cert is None:
            context = ssl.create_default_context(cafile=str(self.pki.server_ca.path))
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            return context
        return client_context(self.pki.server_ca.path, cert.cert, cert.key)

    def internal_ssl(self) -> ssl.SSLContext:
        """A context for the internal API with the caller certificate of the internal CA."""
        return self.client_ssl(self.pki.internal_client)


@contextlib.asynccontextmanager
async def gateway_rig(
    directory: Path,
    trust: DictTrust,
    *,
    proxy_timeout: float = 10.0,
    on_change: OnChange | None = None,
    **gateway_options: Any,
) -> AsyncIterator[GatewayRig]:
    """Start a Gateway over `trust` on 127.0.0.1 (free ports), its agent listener trusting every CA in `trust`."""
    pki = gateway_pki(directory)
    gateway = Gateway(trust, on_change=on_change, **gateway_options)
    agent_ssl = gateway_server_context(pki.server.cert, pki.server.key, trust.all_pems())
    internal_ssl = internal_server_context(pki.server.cert, pki.server.key, pki.internal_ca.path)
    listeners = await start(
        gateway,
        host="127.0.0.1",
        agent_port=0,
        internal_port=0,
        agent_ssl=agent_ssl,
        internal_ssl=internal_ssl,
        proxy_timeout=proxy_timeout,
    )
    try:
        yield GatewayRig(directory, pki, trust, gateway, listeners)
    finally:
        await listeners.close()


def gateway_env(pki: GatewayPki, *, internal_mtls: bool = True) -> dict[str, str]:
    """The environment that turns on `observer controlplane`'s gateway with these certificates (the ports are
    the caller's: AGENT_SERVER_PORT, AGENT_INTERNAL_PORT)."""
    env = {
        "SERVER_CERT_PATH": str(pki.server.cert),
        "SERVER_KEY_PATH": str(pki.server.key),
        "INTERNAL_MTLS_ENABLED": "true" if internal_mtls else "false",
    }
    if internal_mtls:
        env["INTERNAL_CLIENT_CA_PATH"] = str(pki.internal_ca.path)
    return env
