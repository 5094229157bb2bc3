"""The per-CR client certificate check (CPN §3) and the SSL contexts' settings, without a server."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devservers.gateway_certs import ca_pem, issue, issue_expired_client
from devservers.tls_proxy import make_ca
from tunnel.tls import (
    add_client_cas,
    client_context,
    gateway_server_context,
    internal_server_context,
    verify_client_chain,
)


def der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


def test_verify_client_chain(tmp_path: Path) -> None:
    plane, other = make_ca(tmp_path, "plane-ca"), make_ca(tmp_path, "other-ca")
    good = der(issue(plane, tmp_path, "agent", client=True).cert)
    assert verify_client_chain(good, [], [ca_pem(plane)])
    assert verify_client_chain(good, [], [ca_pem(other), ca_pem(plane)])  # any CA of the CR's bundle
    assert verify_client_chain(good, [], [ca_pem(other) + ca_pem(plane)])  # several certificates in one PEM
    assert not verify_client_chain(good, [], [ca_pem(other)])  # another plane's CA
    assert not verify_client_chain(good, [], [])
    assert not verify_client_chain(der(issue_expired_client(plane, tmp_path, "old").cert), [], [ca_pem(plane)])
    # a serverAuth certificate of the right CA is not a client certificate
    assert not verify_client_chain(der(issue(plane, tmp_path, "srv", client=False).cert), [], [ca_pem(plane)])
    assert not verify_client_chain(b"not a certificate", [], [ca_pem(plane)])
    assert not verify_client_chain(good, [b"junk"], [ca_pem(plane)])
    assert not verify_client_chain(good, [], ["-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"])


def test_contexts(tmp_path: Path) -> None:
    server_ca, internal_ca, plane = (make_ca(tmp_path, n) for n in ("server-ca", "internal-ca", "plane-ca"))
    server = issue(server_ca, tmp_path, "gateway", client=False)
    agent_side = gateway_server_context(server.cert, server.key, [ca_pem(plane)])
    assert agent_side.verify_mode == ssl.CERT_OPTIONAL
    assert agent_side.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(agent_side.get_ca_certs()) == 1
    assert add_client_cas(agent_side, [ca_pem(internal_ca), "", "garbage"]) == 1
    assert len(agent_side.get_ca_certs()) == 2
    internal = internal_server_context(server.cert, server.key, internal_ca.path)
    assert internal.verify_mode == ssl.CERT_REQUIRED
    assert internal.minimum_version == ssl.TLSVersion.TLSv1_2
    agent = issue(plane, tmp_path, "agent", client=True)
    client = client_context(server_ca.path, agent.cert, agent.key)
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
