"""A real Kubernetes API server for pytest session fixtures (ARCHITECTURE.md section 6).

Order: ``KUBECONFIG_TEST`` if set (a kubeconfig for a cluster the tests may create namespaces, pods and events
in; never the developer's ``KUBECONFIG``, which may well be a production cluster; ``ETCD_URL_TEST`` names its
etcd for the tests that compact it); else ``scripts/kube.sh``, which builds kube-apiserver and etcd from the Go
module proxy once (cached) and starts them on free loopback ports.

    server = start_kube(tmp_path_factory.mktemp("kube"))
    api = server.api_client()           # a kubernetes.client.ApiClient with admin rights
    server.compact()                    # etcd forgets history: resuming watches get 410 Gone
    with TcpRelay(server.address) as relay:   # a path to the server that the test can cut
        api = server.api_client(relay.port)
        relay.cut()
    server.stop()

The started server has no kubelet or controllers: pods are stored and watched but never run, and namespaces are
never cleaned up (tests use unique names).
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "kube.sh"


class KubeServer:
    def __init__(self, kubeconfig: pathlib.Path, etcd_url: str = "", stopper: Callable[[], None] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.etcd_url = etcd_url.rstrip("/")
        self._stopper = stopper
        atexit.register(self.stop)  # a crashed session must not leave etcd and kube-apiserver behind

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the API server, from the kubeconfig's current cluster."""
        server = urllib.parse.urlsplit(self._cluster()["server"])
        return server.hostname or "127.0.0.1", server.port or 443

    def api_client(self, port: int | None = None) -> k8s.ApiClient:
        """An admin client; through `port` on 127.0.0.1 (a relay) instead of the server's own port if given."""
        path = self.kubeconfig_via(port) if port else self.kubeconfig
        return k8s_config.new_client_from_config(config_file=str(path))

    def kubeconfig_via(self, port: int) -> pathlib.Path:
        """A copy of the kubeconfig whose server is https://127.0.0.1:<port> (the serving certificate is for
        127.0.0.1, so TLS still verifies through a relay)."""
        document = yaml.safe_load(self.kubeconfig.read_text())
        _current_cluster(document)["server"] = f"https://127.0.0.1:{port}"
        path = self.kubeconfig.with_name(f"{self.kubeconfig.name}.via-{port}")
        path.write_text(yaml.safe_dump(document))
        return path

    def compact(self) -> int:
        """Compacts etcd up to its current revision, so every older resourceVersion is gone (a watch resuming
        from one gets 410), as the API server's own periodic compaction does on a live cluster. Returns it."""
        if not self.etcd_url:
            raise RuntimeError("compacting needs the server's etcd: set ETCD_URL_TEST with KUBECONFIG_TEST")
        # etcd's JSON gateway: keys are base64; "AA==" (a NUL byte) as range_end with key "AA==" means every key.
        head = _post(f"{self.etcd_url}/v3/kv/range", {"key": "AA==", "range_end": "AA==", "limit": 1})
        revision = int(head["header"]["revision"])
        _post(f"{self.etcd_url}/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def stop(self) -> None:
        """Stop the server if this helper started it; safe to call more than once."""
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()

    def _cluster(self) -> dict:
        return _current_cluster(yaml.safe_load(self.kubeconfig.read_text()))

    def __repr__(self) -> str:
        return f"KubeServer({str(self.kubeconfig)!r})"


def _current_cluster(document: dict) -> dict:
    """The current context's cluster entry of a kubeconfig document (to read, or to change in place)."""
    contexts = {item["name"]: item["context"] for item in document.get("contexts") or []}
    context: dict[str, Any] = contexts.get(document.get("current-context")) or next(iter(contexts.values()), {})
    name = context.get("cluster") or document["clusters"][0]["name"]
    return next(item["cluster"] for item in document["clusters"] if item["name"] == name)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def start_kube(tmp_dir: pathlib.Path) -> KubeServer:
    external = os.environ.get("KUBECONFIG_TEST")
    if external:
        return KubeServer(pathlib.Path(external), os.environ.get("ETCD_URL_TEST", ""))  # not ours: never stopped
    data_dir = pathlib.Path(tmp_dir).resolve()
    # The script's stderr (build progress, log tails on failure) goes to ours; stdout carries one line.
    out = subprocess.run([str(SCRIPT), "start", str(data_dir)], check=True, stdout=subprocess.PIPE, text=True)
    values = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    etcd_port = (data_dir / "etcd.port").read_text().strip()

    def stop() -> None:
        subprocess.run([str(SCRIPT), "stop", str(data_dir)], check=True)

    return KubeServer(pathlib.Path(values["KUBECONFIG"]), f"http://127.0.0.1:{etcd_port}", stop)


class TcpRelay:
    """A TCP relay from a free loopback port to `target`, which the test can cut: `cut()` closes every
    connection it carries (each client sees the server end its connection mid-stream), and while `refusing` is
    set, new connections are closed as soon as they are accepted (a server that is down)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.refusing = False
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def cut(self) -> int:
        """Closes every relayed connection; returns how many sockets were closed."""
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)
        return len(sockets)

    def close(self) -> None:
        self._closed = True
        _close(self._listener)
        self.cut()

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            self.accepted += 1
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
