"""TLS for the tunnel: the SSL contexts of the gateway's two listeners and of their clients, and the per-CR check
of an agent's client certificate (CPN §3).

Why the check is not left to the TLS layer: upstream requests the agent's certificate without verifying it in the
handshake and then verifies it once per plane CR against that CR's own `spec.clusterAgent.clientCA`, so one socket is
valid for exactly the CRs whose CA signed it. Python cannot request a certificate without verifying it, so the
gateway's TLS layer verifies against the union of every plane CA (`add_client_cas`) and `verify_client_chain` is
the authoritative per-CR decision.
"""

from __future__ import annotations

import datetime
import logging
import ssl
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.x509 import verification

log = logging.getLogger(__name__)

# `_ssl.Certificate.public_bytes` format; public as `ssl.ENCODING_DER` only from Python 3.13.
_ENCODING_DER: int = getattr(ssl, "_ssl").ENCODING_DER  # noqa: B009


def _base(purpose: int) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def add_client_cas(context: ssl.SSLContext, ca_pems: Iterable[str]) -> int:
    """Trust more client CAs on a live server context (new handshakes see them). Returns how many PEMs loaded.

    A PEM that does not parse is logged and skipped: one plane's broken CA must not stop the others' agents.
    OpenSSL's store only grows; a CA removed from a plane CR is refused by the per-CR check, not by TLS.
    """
    loaded = 0
    for pem in ca_pems:
        if not pem.strip():
            continue
        try:
            context.load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as exc:
            log.warning("skipping a client CA that does not load: %s", exc)
            continue
        loaded += 1
    return loaded


def gateway_server_context(
    cert_file: str | Path, key_file: str | Path, client_ca_pems: Iterable[str] = ()
) -> ssl.SSLContext:
    """The agent listener (8443): TLS >= 1.2, a client certificate requested but optional at the TLS layer.

    No certificate gets through the handshake and is refused with 401 by the application, as upstream does.
    """
    context = _base(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    context.verify_mode = ssl.CERT_OPTIONAL
    add_client_cas(context, client_ca_pems)
    return context


def internal_server_context(cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path) -> ssl.SSLContext:
    """The internal listener (8444): mutual TLS against a CA of its own, so agent certificates cannot call `/api/*`."""
    context = _base(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_file), str(key_file))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(client_ca_file))
    return context


def client_context(server_ca_file: str | Path, cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A client of either listener: verifies the gateway against `server_ca_file` and presents its own certificate.

    The agent uses it for `wss://.../ws`; the control plane's callers use it for the internal API.
    """
    context = _base(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(server_ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


agent_client_context = client_context


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> tuple[bytes | None, list[bytes]]:
    """The DER leaf the peer presented and the intermediates it sent with it (the handshake's chain, unverified).

    Python 3.11 exposes the sent chain only on the private `_sslobj` (public from 3.13); without it the leaf
    alone is returned, which suffices for agent certificates signed directly by the plane CA.
    """
    leaf = ssl_object.getpeercert(binary_form=True)
    if not leaf:
        return None, []
    inner = getattr(ssl_object, "_sslobj", ssl_object)
    getter = getattr(inner, "get_unverified_chain", None)
    chain: list[bytes] = []
    if getter is not None:
        for cert in getter() or []:
            der = cert.public_bytes(_ENCODING_DER)
            if der != leaf:
                chain.append(der)
    return leaf, chain


def _load_cas(ca_pems: Sequence[str]) -> list[x509.Certificate]:
    cas: list[x509.Certificate] = []
    for pem in ca_pems:
        try:
            cas.extend(x509.load_pem_x509_certificates(pem.encode("utf-8")))
        except ValueError as exc:
            log.warning("ignoring a CA PEM that does not parse: %s", exc)
    return cas


def verify_client_chain(
    leaf_der: bytes, chain_ders: Sequence[bytes], ca_pems: Sequence[str], *, now: datetime.datetime | None = None
) -> bool:
    """True when `leaf_der` chains to one of `ca_pems` (through `chain_ders`), is in its validity period and is
    allowed for client authentication (EKU clientAuth). The CN is not looked at: identity is the CA.

    A subjectAltName is not required (cert-manager's agent certificate carries only a commonName), matching Go's
    `x509.Verify` with `ExtKeyUsageClientAuth`. Anything unparsable is False, never an exception.
    """
    cas = _load_cas(ca_pems)
    if not cas:
        return False
    try:
        leaf = x509.load_der_x509_certificate(leaf_der)
        intermediates = [x509.load_der_x509_certificate(der) for der in chain_ders]
        ee_policy = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
        )
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(cas))
            .time(now or datetime.datetime.now(datetime.UTC))
            .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
            .build_client_verifier()
        )
        verifier.verify(leaf, intermediates)
    except (ValueError, verification.VerificationError) as exc:
        log.info("client certificate refused: %s", exc)
        return False
    return True
