"""A real OpenSearch for pytest session fixtures (ARCHITECTURE.md section 6).

Order: ``OPENSEARCH_URL`` if set; else a container through testcontainers if a Docker engine answers;
else ``scripts/opensearch.sh`` (distribution from Maven Central, started on a free loopback port).

    server = start_opensearch(tmp_path_factory.mktemp("opensearch"))
    yield server.url
    server.stop()
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import subprocess
import urllib.request
from collections.abc import Callable

from devservers.local import docker_engine_answers

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "opensearch.sh"
CONTAINER_IMAGE = "opensearchproject/opensearch:3.3.2"


class OpenSearchServer:
    def __init__(self, url: str, stopper: Callable[[], None] | None = None) -> None:
        self.url = url.rstrip("/")
        self._stopper = stopper
        # Safety net: a crashed session must not leave a daemonized JVM behind.
        atexit.register(self.stop)

    def stop(self) -> None:
        """Stop the server if this helper started it; safe to call more than once."""
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()

    def __repr__(self) -> str:
        return f"OpenSearchServer({self.url!r})"


def start_opensearch(tmp_dir: pathlib.Path) -> OpenSearchServer:
    url = os.environ.get("OPENSEARCH_URL")
    if url:
        return OpenSearchServer(url)  # not ours: stop() leaves it running
    if docker_engine_answers():
        return _start_container()
    return _start_local(pathlib.Path(tmp_dir))


def _start_container() -> OpenSearchServer:
    try:
        from testcontainers.community.opensearch import OpenSearchContainer
    except ImportError:  # testcontainers before the "community" split
        from testcontainers.opensearch import OpenSearchContainer

    container = (
        OpenSearchContainer(CONTAINER_IMAGE, security_enabled=False)
        .with_env("OPENSEARCH_JAVA_OPTS", "-Xms512m -Xmx512m")
        .with_env("cluster.routing.allocation.disk.threshold_enabled", "false")
    )
    container.start()  # waits until the node answers
    config = container.get_config()
    url = f"http://{config['host']}:{config['port']}"
    _single_node_defaults(url)
    return OpenSearchServer(url, container.stop)


def _start_local(data_dir: pathlib.Path) -> OpenSearchServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    _run_script("fetch", timeout=900)  # first run downloads ~80 MB
    out = _run_script("start", str(data_dir), timeout=300)
    urls = [line.split("=", 1)[1] for line in out.splitlines() if line.startswith("OPENSEARCH_URL=")]
    if not urls:
        raise RuntimeError(f"{SCRIPT} start printed no OPENSEARCH_URL line: {out!r}")

    def stop() -> None:
        _run_script("stop", str(data_dir), timeout=60)

    return OpenSearchServer(urls[-1], stop)


def _run_script(*args: str, timeout: float) -> str:
    # stdout carries only the OPENSEARCH_URL line; stderr is kept for the error message.
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{SCRIPT} {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def _single_node_defaults(url: str) -> None:
    # Same as scripts/opensearch.sh: one node holds no replicas, so new indices should not stay yellow.
    body = json.dumps({"persistent": {"cluster.default_number_of_replicas": 0}}).encode()
    req = urllib.request.Request(
        f"{url}/_cluster/settings", data=body, method="PUT", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=10).close()
