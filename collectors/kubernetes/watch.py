"""List + watch of one Kubernetes collection on a thread, resuming where it left off.

The official `kubernetes` client is synchronous, so each watched collection gets a daemon thread that runs the
loop client-go's reflector runs:

1. list (paged) -> `handler.relisted(items, resource_version)`, unless a resourceVersion to resume from is known
   (a checkpoint, or the previous watch);
2. watch from that resourceVersion with bookmarks -> `handler.changed(type, object)` / `handler.bookmark(rv)`,
   remembering the newest resourceVersion seen;
3. when the watch ends (the server's timeout, or it closed the connection), watch again from there; when the
   server says the resourceVersion is gone (410: etcd compacted it), list again; on any other failure (refused,
   reset, 5xx, timeouts) back off exponentially with jitter and watch again from where it was.

Objects are handled as plain JSON dicts, not the client's generated models: parsing into models costs far more
than the receivers need, and they read only a few fields. The handler runs on the watch thread; it may block
(that is the backpressure), and must not raise.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

#: The server ends each watch after a random 5-10 minutes (client-go's choice), so no watch lives forever and
#: reconnections of many collectors spread out.
WATCH_TIMEOUT_S = (300, 600)
#: Reads wait at most this long past the server's timeout: a peer that vanished without closing is noticed.
READ_GRACE_S = 30.0
CONNECT_TIMEOUT_S = 10.0
LIST_PAGE = 500
MIN_BACKOFF_S = 0.2
MAX_BACKOFF_S = 30.0

ListCall = Callable[..., Any]  # a generated `list_*` method of the kubernetes client


def api_client(kubeconfig: Path | str | None) -> k8s.ApiClient:
    """A client for the API server named by a kubeconfig file, or, without one, for the cluster this process runs
    in (its service account's token and CA, which the client re-reads as they rotate)."""
    if kubeconfig:
        client: k8s.ApiClient = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        return client
    configuration = k8s.Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


class Gone(Exception):
    """The resourceVersion to resume from is no longer available: list again."""


class WatchHandler(Protocol):
    def relisted(self, items: list[dict[str, Any]], resource_version: str) -> None:
        """The whole collection as of `resource_version` (after a start without one, or a 410)."""

    def changed(self, kind: str, obj: dict[str, Any]) -> None:
        """ADDED, MODIFIED or DELETED, in resourceVersion order."""

    def bookmark(self, resource_version: str) -> None:
        """Nothing changed up to `resource_version`."""


def read_json(response: Any) -> Any:
    """The JSON body of a raw (`_preload_content=False`) response of the kubernetes client, its connection
    released back to the pool."""
    try:
        return orjson.loads(response.data)
    finally:
        response.release_conn()


def resource_version(obj: dict[str, Any]) -> str:
    """An object's resourceVersion ("" when it has none): where a watch resumes after it."""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _too_large(exc: ApiException) -> bool:
    """A resourceVersion from the future (the checkpoint of another cluster, or of an etcd that was wiped):
    the server waits a few seconds for it and then refuses; like a 410, only a fresh list gets past it."""
    return exc.status == 504 and "Too large resource version" in str(exc.body or exc.reason or "")


class Reflector:
    """Runs list+watch for one collection on a daemon thread until `stop()`. `call` is a `list_*` method of the
    kubernetes client; `selectors` are passed to it (namespace, field_selector, label_selector)."""

    def __init__(
        self,
        name: str,
        call: ListCall,
        handler: WatchHandler,
        *,
        resource_version: str = "",
        **selectors: Any,
    ) -> None:
        self.name = name
        self.call = call
        self.handler = handler
        self.selectors = selectors
        self.resource_version = resource_version
        self.relists = 0  # how often the collection was listed
        self.watches = 0  # how many watch requests were made
        self.failures = 0  # failed requests (not counting 410s)
        self._stop = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts the loop on a daemon thread (so a stuck read never keeps the process alive)."""
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ends the loop, interrupting a watch that is waiting for data."""
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------------------------------- the loop

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if not self.resource_version:
                    self._list()
                started, delivered = time.monotonic(), self._watch()
                # A watch that the server ends at once, over and over, must not become a busy loop.
                failures = 0 if delivered or time.monotonic() - started > 1.0 else failures + 1
            except Gone as gone:
                log.info("watch %s: %s; listing again", self.name, gone)
                self.resource_version = ""
                failures = 0
                continue
            except Exception as exc:  # refused, reset, TLS, 5xx, timeouts: the server may come back
                if self._stop.is_set():
                    break
                failures += 1
                self.failures += 1
                level = logging.INFO if failures == 1 else logging.WARNING
                log.log(level, "watch %s failed (%s: %s); retry %d", self.name, type(exc).__name__, exc, failures)
            if failures:
                delay = min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
                self._stop.wait(delay)

    def _list(self) -> None:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            try:
                page = self._request(limit=LIST_PAGE, _continue=token or None)
            except ApiException as exc:
                if exc.status == 410:  # the continue token expired: start the list over
                    raise Gone("list continuation expired") from exc
                raise
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                break
        self.relists += 1
        self.resource_version = str(metadata.get("resourceVersion") or "")
        self.handler.relisted(items, self.resource_version)

    def _request(self, **params: Any) -> dict[str, Any]:
        body: dict[str, Any] = read_json(
            self.call(**self.selectors, **params, _preload_content=False, _request_timeout=(CONNECT_TIMEOUT_S, 60.0))
        )
        return body

    def _watch(self) -> int:
        """One watch request, to its end; the number of changes it delivered."""
        timeout = random.randint(*WATCH_TIMEOUT_S)
        self.watches += 1
        try:
            response = self.call(
                **self.selectors,
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout,
                _preload_content=False,
                _request_timeout=(CONNECT_TIMEOUT_S, timeout + READ_GRACE_S),
            )
        except ApiException as exc:
            if exc.status == 410 or _too_large(exc):
                raise Gone(f"resourceVersion {self.resource_version} is not available ({exc.status})") from exc
            raise
        with self._lock:
            self._response = response
        delivered = 0
        try:
            if self._stop.is_set():
                return 0
            for line in _lines(response):
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise Gone(f"resourceVersion {self.resource_version} expired: {obj.get('message', '')}")
                    raise ApiException(status=code or 500, reason=f"{obj.get('reason', '')}: {obj.get('message', '')}")
                version = resource_version(obj)
                if kind == "BOOKMARK":
                    self.handler.bookmark(version)
                else:
                    self.handler.changed(str(kind), obj)
                    delivered += 1
                if version:
                    self.resource_version = version
                if self._stop.is_set():
                    break
        finally:
            with self._lock:
                self._response = None
            response.release_conn()
        return delivered

    def _interrupt(self) -> None:
        """Unblocks a thread waiting in a read of the watch response: shutting the socket down (rather than
        closing it, which would wait for the reading thread's locks) makes the read return at once."""
        with self._lock:
            response = self._response
        connection = getattr(response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _lines(response: Any) -> Iterator[bytes]:
    """The newline-separated JSON documents of a watch response, as the chunks arrive."""
    pending = b""
    for chunk in response.stream(amt=None, decode_content=True):
        pending += chunk
        if b"\n" not in pending:
            continue
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line.strip():
                yield line
    if pending.strip():
        yield pending
