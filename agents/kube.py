"""Replay a tunnelled request against this plane's kube-apiserver with the agent's own credentials (CPN §3, §4).

Why the agent and not the gateway decides the credentials: the control plane must never hold a plane's keys. So
any inbound `Authorization` is dropped, and the request goes out with the ServiceAccount token (re-read from its
file on every request, because the kubelet rotates projected tokens) or the kubeconfig's credentials (tests).
Every answer is a TunnelResponse: a refused request, an unknown target or a failed backend never raise.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from multidict import CIMultiDict
from yarl import URL

from tunnel.frames import MAX_FRAME_BYTES, TunnelError, TunnelRequest, TunnelResponse
from tunnel.paths import refusal

log = logging.getLogger("agents.kube")

TARGET = "k8s"
"""The only route the agent has (upstream `cmd/cluster-agent/main.go` passes no extra routes); others get 404."""

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REQUEST_TIMEOUT_S = 30.0  # the gateway gives up after 30 s (CPN §2); an answer later than that is dropped anyway
MAX_RESPONSE_BODY = (MAX_FRAME_BYTES - 64 * 1024) * 3 // 4
"""The largest backend body that still fits one frame once base64-encoded (4/3), with 64 KiB left for headers."""

# Never forwarded either way: credentials (the agent's own are used) and hop-by-hop or framing headers, which
# belong to each HTTP connection, not to the request the tunnel carries.
_DROP_REQUEST = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
)
_DROP_RESPONSE = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "trailer"})


class CredentialsError(ValueError):
    """The plane's API server or the agent's credentials for it cannot be loaded; one line naming what to fix."""


@dataclass(frozen=True)
class KubeTarget:
    """Where and as whom the agent talks to its kube-apiserver."""

    server: str  # https://host:port, no trailing slash
    tls: ssl.SSLContext  # verifies the server with the cluster CA; holds a client certificate if the config has one
    token: str = ""  # a static bearer token (kubeconfig `token`)
    token_file: Path | None = None  # re-read on every request (the ServiceAccount's projected token)

    def bearer(self) -> str:
        """The token for this request: the file's current content when there is a file (rotation), else `token`."""
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return self.token


def in_cluster(directory: Path = SERVICE_ACCOUNT_DIR, environ: Mapping[str, str] = os.environ) -> KubeTarget:
    """The API server of the cluster this process runs in: KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's CA
    and token file (as client-go's `rest.InClusterConfig`)."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise CredentialsError(
            "not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): pass --kubeconfig with the plane's API server"
        )
    token_file = directory / "token"
    if not os.access(token_file, os.R_OK):
        raise CredentialsError(f"no readable ServiceAccount token at {token_file}")
    host = f"[{host}]" if ":" in host else host
    return KubeTarget(f"https://{host}:{port}", _tls(cafile=directory / "ca.crt"), token_file=token_file)


def from_kubeconfig(path: Path) -> KubeTarget:
    """The current context's cluster and user of a kubeconfig: server, CA (file or data), and a token, token file
    or client certificate. Exec plugins and auth providers are not supported (the agent runs with a plain SA)."""
    try:
        document: dict[str, Any] = yaml.safe_load(path.read_text())
        contexts: dict[str, dict[str, Any]] = {item["name"]: item["context"] for item in document.get("contexts") or []}
        context: dict[str, Any] = contexts.get(str(document.get("current-context"))) or next(
            iter(contexts.values()), {}
        )
        cluster = _named(document.get("clusters"), context.get("cluster"))["cluster"]
        user = _named(document.get("users"), context.get("user"))["user"] if document.get("users") else {}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise CredentialsError(f"--kubeconfig {path}: not a usable kubeconfig ({exc!r})") from None
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith("https://"):
        raise CredentialsError(f"--kubeconfig {path}: the cluster's server must be an https:// URL (got {server!r})")
    base = path.parent
    tls = _tls(
        cafile=_resolve(base, cluster.get("certificate-authority")),
        cadata=_decoded(cluster.get("certificate-authority-data")),
        certfile=_resolve(base, user.get("client-certificate")),
        certdata=_decoded(user.get("client-certificate-data")),
        keyfile=_resolve(base, user.get("client-key")),
        keydata=_decoded(user.get("client-key-data")),
    )
    token_file = _resolve(base, user.get("tokenFile"))
    return KubeTarget(server, tls, token=str(user.get("token") or ""), token_file=token_file)


def _named(items: Any, name: Any) -> dict[str, Any]:
    """The entry called `name`, else the first (kubectl's fallback when the context names nothing)."""
    entries: list[dict[str, Any]] = list(items or [])
    for entry in entries:
        if entry.get("name") == name:
            return entry
    return entries[0]


def _resolve(base: Path, value: Any) -> Path | None:
    return (base / str(value)) if value else None


def _decoded(value: Any) -> bytes | None:
    return base64.b64decode(str(value)) if value else None


def _tls(
    *,
    cafile: Path | None = None,
    cadata: bytes | None = None,
    certfile: Path | None = None,
    certdata: bytes | None = None,
    keyfile: Path | None = None,
    keydata: bytes | None = None,
) -> ssl.SSLContext:
    """A verifying client context: the cluster CA if given (else the system's), an optional client certificate."""
    context = ssl.create_default_context(
        cafile=str(cafile) if cafile else None, cadata=cadata.decode() if cadata else None
    )
    try:
        if certfile or certdata:
            with tempfile.TemporaryDirectory() as scratch:  # ssl loads a chain only from files
                cert = certfile or _write(Path(scratch) / "client.crt", certdata or b"")
                key = keyfile or (_write(Path(scratch) / "client.key", keydata) if keydata else None)
                context.load_cert_chain(str(cert), str(key) if key else None)
    except (OSError, ssl.SSLError) as exc:
        raise CredentialsError(f"the kubeconfig's client certificate or key is not usable ({exc})") from None
    return context


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def failure(request_id: str, status: int, message: str) -> TunnelResponse:
    """The error answer the gateway turns into an HTTP error: status plus error{code, message} (router.go)."""
    return TunnelResponse(request_id=request_id, status_code=status, error=TunnelError(message=message, code=status))


class KubeReplayer:
    """Replays TunnelRequests against one kube-apiserver over a pooled, verified aiohttp session.

    Use as `async with KubeReplayer(target) as replay: response = await replay.handle(request)`.
    """

    def __init__(
        self,
        target: KubeTarget,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        max_body: int = MAX_RESPONSE_BODY,
        max_connections: int = 64,
    ) -> None:
        self._target = target
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_body = max_body
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeReplayer:
        connector = aiohttp.TCPConnector(ssl=self._target.tls, limit=self._max_connections)
        # auto_decompress off: the body goes back byte for byte with its Content-Encoding, and the body bound
        # applies to what crosses the tunnel.
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: TunnelRequest) -> TunnelResponse:
        """One request -> its response. Refused (tunnel.paths) or unknown-target requests never reach the backend;
        a backend that fails or answers too much gives 502 `backend request failed: ...`."""
        refused = refusal(
            request.target, request.method, request.path, request.query, request.headers, len(request.body)
        )
        if refused is not None:
            return failure(request.request_id, refused.status, refused.message)
        if request.target != TARGET:
            return failure(request.request_id, 404, f"unknown target: {request.target}")
        if not request.path.startswith("/"):
            return failure(request.request_id, 400, "invalid path: must start with /")
        try:
            return await self._forward(request)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, _TooLarge) as exc:
            reason = str(exc) or type(exc).__name__
            log.info("backend request %s %s failed: %s", request.method, request.path, reason)
            return failure(request.request_id, 502, f"backend request failed: {reason}")

    async def _forward(self, request: TunnelRequest) -> TunnelResponse:
        if self._session is None:
            raise RuntimeError("KubeReplayer used outside `async with`")
        headers: CIMultiDict[str] = CIMultiDict()
        for name, values in request.headers.items():
            if name.lower() not in _DROP_REQUEST:
                for value in values:
                    headers.add(name, value)
        token = self._target.bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        raw = self._target.server + request.path + (f"?{request.query}" if request.query else "")
        url = URL(raw, encoded=True)  # as the gateway received it: no re-quoting
        async with self._session.request(
            request.method,
            url,
            headers=headers,
            data=request.body if request.body else None,
            timeout=self._timeout,
            allow_redirects=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        ) as response:
            body = await _bounded(response.content, self._max_body)
            out: dict[str, list[str]] = {}
            for name in response.headers:
                if name.lower() not in _DROP_RESPONSE and name not in out:
                    out[name] = response.headers.getall(name)
            return TunnelResponse(request_id=request.request_id, status_code=response.status, headers=out, body=body)


class _TooLarge(Exception):
    pass


async def _bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or _TooLarge as soon as it passes `limit` (never buffers more than limit + one chunk)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"response body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
