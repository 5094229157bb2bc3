"""A real Prometheus + Alertmanager for pytest session fixtures (ARCHITECTURE.md section 6).

Order: ``PROMETHEUS_URL`` (and ``ALERTMANAGER_URL``) if set; else containers through testcontainers if a Docker
engine answers; else ``scripts/prometheus.sh`` (Debian packages, started on free loopback ports).

    server = start_prometheus(tmp_path_factory.mktemp("prometheus"))
    server.backfill(openmetrics_text)      # historical series, queryable when it returns
    (server.rules_dir / "x.yml").write_text(rules); server.reload()
    yield server
    server.stop()
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import pathlib
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

from devservers.local import docker_engine_answers

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "prometheus.sh"
PROMETHEUS_IMAGE = "prom/prometheus:v2.53.2"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.27.0"

# One OpenMetrics sample line: series selector, value, optional timestamp (exemplars after " # " are ignored).
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?)\s+(\S+)(?:\s+(\S+))?\s*(?:#.*)?$")


class PrometheusServer:
    def __init__(
        self,
        url: str,
        alertmanager_url: str,
        data_dir: pathlib.Path | None,
        run_backfill: Callable[[pathlib.Path], None] | None = None,
        stopper: Callable[[], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.alertmanager_url = alertmanager_url.rstrip("/")
        self.data_dir = data_dir  # None for an external server: no rules dir, no backfill
        self.rules_dir = data_dir / "rules" if data_dir else None
        self._run_backfill = run_backfill
        self._stopper = stopper
        self._files = itertools.count()
        atexit.register(self.stop)  # a crashed session must not leave daemons behind

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        params = {"query": promql} | ({"time": str(at)} if at is not None else {})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10) as r:
            return json.load(r)["data"]["result"]

    def reload(self) -> None:
        """Re-read prometheus.yml and the rule files (needs --web.enable-lifecycle)."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/-/reload", method="POST"), timeout=30).close()

    def configure_alertmanager(self, config_yaml: str) -> None:
        """Replace Alertmanager's configuration and reload it (both started servers read DATA/alertmanager.yml)."""
        if self.data_dir is None:
            raise RuntimeError("configuring Alertmanager needs a server this helper started (not ALERTMANAGER_URL)")
        (self.data_dir / "alertmanager.yml").write_text(config_yaml)
        request = urllib.request.Request(f"{self.alertmanager_url}/-/reload", method="POST")
        urllib.request.urlopen(request, timeout=30).close()  # a refused config answers 500 (HTTPError)

    def backfill(self, openmetrics_text: str, timeout: float = 90) -> None:
        """Write historical samples as TSDB blocks; returns once the newest sample of each series is queryable."""
        if self._run_backfill is None or self.data_dir is None:
            raise RuntimeError("backfill needs a Prometheus whose TSDB this helper owns (not PROMETHEUS_URL)")
        if not openmetrics_text.rstrip().endswith("# EOF"):
            openmetrics_text = openmetrics_text.rstrip("\n") + "\n# EOF\n"
        path = self.data_dir / f"backfill-{next(self._files)}.om"
        path.write_text(openmetrics_text)
        self._run_backfill(path)
        newest: dict[str, float] = {}
        for line in openmetrics_text.splitlines():
            m = _SAMPLE.match(line)
            if m and m.group(3):
                newest[m.group(1)] = max(newest.get(m.group(1), 0.0), float(m.group(3)))
        deadline = time.monotonic() + timeout
        for selector, ts in newest.items():
            while not self.query(selector, at=ts):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"backfilled series {selector} not queryable after {timeout}s")
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop the servers if this helper started them; safe to call more than once."""
        stopper, self._stopper = self._stopper, None
        if stopper is not None:
            stopper()

    def __repr__(self) -> str:
        return f"PrometheusServer({self.url!r}, alertmanager={self.alertmanager_url!r})"


def start_prometheus(tmp_dir: pathlib.Path) -> PrometheusServer:
    url = os.environ.get("PROMETHEUS_URL")
    if url:
        return PrometheusServer(url, os.environ.get("ALERTMANAGER_URL", ""), None)  # not ours: never stopped
    data_dir = pathlib.Path(tmp_dir).resolve()
    if docker_engine_answers():
        return _start_containers(data_dir)
    return _start_local(data_dir)


def _start_local(data_dir: pathlib.Path) -> PrometheusServer:
    # The script's stderr (install progress, log tails on failure) goes to ours; stdout carries the two URLs.
    out = subprocess.run([str(SCRIPT), "start", str(data_dir)], check=True, stdout=subprocess.PIPE, text=True)
    urls = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    def backfill(path: pathlib.Path) -> None:
        # The script restarts Prometheus on the same port so the new blocks load at once.
        subprocess.run([str(SCRIPT), "backfill", str(data_dir), str(path)], check=True, stdout=subprocess.DEVNULL)

    def stop() -> None:
        subprocess.run([str(SCRIPT), "stop", str(data_dir)], check=True)

    return PrometheusServer(urls["PROMETHEUS_URL"], urls["ALERTMANAGER_URL"], data_dir, backfill, stop)


def _start_containers(data_dir: pathlib.Path) -> PrometheusServer:
    # Untested here (no Docker engine on the development machines). The data dir is mounted at /data so rule files
    # and backfill blocks written on the host are seen inside; a restart would change the mapped port, so backfill
    # relies on Prometheus' once-a-minute block reload instead (PrometheusServer.backfill waits for it).
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    (data_dir / "rules").mkdir(parents=True, exist_ok=True)
    (data_dir / "alertmanager.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    (data_dir / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
        "rule_files:\n  - /data/rules/*.yml\n"
        'alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ["alertmanager:9093"]\n'
        "storage:\n  tsdb:\n    out_of_order_time_window: 30d\n"
    )
    network = Network().__enter__()
    am = (
        DockerContainer(ALERTMANAGER_IMAGE, user="0")
        .with_network(network)
        .with_network_aliases("alertmanager")
        .with_volume_mapping(str(data_dir), "/data", mode="rw")
        .with_exposed_ports(9093)
        .with_command(
            "--config.file=/data/alertmanager.yml --storage.path=/data/alertmanager --cluster.listen-address="
        )
    )
    prom = (
        DockerContainer(PROMETHEUS_IMAGE, user="0")
        .with_network(network)
        .with_volume_mapping(str(data_dir), "/data", mode="rw")
        .with_exposed_ports(9090)
        .with_command(
            "--config.file=/data/prometheus.yml --storage.tsdb.path=/data/tsdb --storage.tsdb.retention.time=30d"
            " --web.enable-remote-write-receiver --web.enable-lifecycle --rules.alert.resend-delay=1s"
        )
    )
    am.start()
    prom.start()

    def url(c: DockerContainer, port: int) -> str:
        return f"http://{c.get_container_host_ip()}:{c.get_exposed_port(port)}"

    prom_url, am_url = url(prom, 9090), url(am, 9093)
    for u in (prom_url, am_url):
        _wait_ready(u)

    def backfill(path: pathlib.Path) -> None:
        cmd = ["promtool", "tsdb", "create-blocks-from", "openmetrics", f"/data/{path.name}", "/data/tsdb"]
        code, output = prom.exec(cmd)
        if code != 0:
            raise RuntimeError(f"promtool failed: {output!r}")

    def stop() -> None:
        prom.stop()
        am.stop()
        network.remove()

    return PrometheusServer(prom_url, am_url, data_dir, backfill, stop)


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/-/ready", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
