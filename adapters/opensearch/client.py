"""The connection to OpenSearch, configured with OpenChoreo's variable names, and what its failures mean.

Every request carries a timeout and is never retried by the client itself: a query that cannot be answered in
time becomes `BackendUnavailable` (a 503 for the user) instead of a hang, and the bulk writer does its own,
item-aware retrying.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from opensearchpy import AsyncOpenSearch, ConnectionError, ConnectionTimeout, JSONSerializer, TransportError

from adapters.opensearch.layout import IndexLayout
from adapters.protocols import BackendUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenSearchConfig:
    address: str  # OPENSEARCH_ADDRESS, e.g. https://opensearch:9200
    username: str = ""  # OPENSEARCH_USERNAME
    password: str = field(default="", repr=False)  # OPENSEARCH_PASSWORD
    tls_skip_verify: bool = False  # OPENSEARCH_TLS_SKIP_VERIFY
    ca_file: str = ""  # OPENSEARCH_CA_FILE: a private CA to verify the server with
    timeout_s: float = 10.0  # OPENSEARCH_TIMEOUT_SECONDS: per request
    layout: IndexLayout = IndexLayout()


class OrjsonSerializer(JSONSerializer):
    """Search responses are parsed on every query; orjson does it several times faster than `json`."""

    def loads(self, s: str | bytes) -> object:
        return orjson.loads(s)

    def dumps(self, data: object) -> str | bytes:
        if isinstance(data, (str, bytes)):
            return data  # already serialised (bulk bodies)
        return orjson.dumps(data, default=self.default).decode()


def connect(config: OpenSearchConfig) -> AsyncOpenSearch:
    tls = config.address.startswith("https://")
    options: dict[str, Any] = {
        "hosts": [config.address],
        "timeout": config.timeout_s,
        "max_retries": 0,
        "retry_on_timeout": False,
        "http_compress": False,
        "serializer": OrjsonSerializer(),
    }
    if config.username:
        options["http_auth"] = (config.username, config.password)
    if tls:
        options.update(use_ssl=True, verify_certs=not config.tls_skip_verify, ssl_show_warn=False)
        if config.ca_file:
            options["ca_certs"] = config.ca_file
    return AsyncOpenSearch(**options)


@contextlib.contextmanager
def unavailable_on_failure(what: str) -> Iterator[None]:
    """Network failures, timeouts, 429 and 5xx mean "try again later"; anything else is a bug of ours or a
    misconfiguration and propagates. Credentials never reach the message: only status and error type."""
    try:
        yield
    except (ConnectionError, ConnectionTimeout) as exc:
        raise BackendUnavailable(f"{what}: OpenSearch unreachable ({type(exc).__name__})") from None
    except TransportError as exc:
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        if status == 429 or status >= 500 or status in (401, 403):
            raise BackendUnavailable(f"{what}: OpenSearch answered {status} {str(exc.error)[:200]}") from None
        raise
