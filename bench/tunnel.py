"""The cluster-gateway tunnel's cost: `GET /api/v1/namespaces/default` three ways, in the same run.

- direct: straight to the kube-apiserver with the agent's ServiceAccount token (the baseline);
- proxy: the gateway's internal listener (mutual TLS) -> WebSocket -> the agent process -> the kube-apiserver,
  what the controller manager's HTTP calls take (`/api/proxy/...`);
- send: the in-process `Gateway.send` -> WebSocket -> agent -> kube-apiserver, the reconcilers' path.

Each at concurrency 1 (p50/p99 in ms, and the median of the per-round differences from direct) and 16 (p50/p99
and requests/s). The kube-apiserver, the gateway (both listeners, real TLS, `devservers.gateway_certs.gateway_rig`)
and the agent (`python -m agents.run`) are real processes or listeners. Where the callers run matters on a small
machine, so it is as in production: the HTTP callers of direct and proxy are a child process of their own (same
aiohttp client for both, so its cost cancels), while send runs inside the gateway's process and event loop, as the
reconcilers do. The child times its own requests; this process sends it one command per batch, untimed. Rounds
interleave the three sides (serially request by request; at 16, one batch each per round), so load that changes
during the run weighs on all of them alike. Also the CPU per tunnelled request of the agent process, and of the
gateway's process for proxied requests. No assertions: figures next to the baseline.

`python -m bench.tunnel` runs this one alone; BENCH_TUNNEL_REQUESTS overrides the serial request count per side
(the concurrent phase sends four times as many).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from agents.kube import from_kubeconfig
from bench.harness import latencies, percentile, process_cpu_s, report
from bench.plane_rig import connected_plane
from controlplane.gateway.service import Gateway
from devservers.gateway_certs import GatewayRig
from tunnel.frames import TunnelRequest
from tunnel.tls import client_context

PLANE = ("observabilityplane", "bench")
CR_KEY = "/bench"  # a ClusterObservabilityPlane named bench
PATH = "/api/v1/namespaces/default"
PROXY_PATH = f"/api/proxy/{PLANE[0]}/{PLANE[1]}/_cluster/{PLANE[1]}/k8s{PATH}"
CONCURRENCY = 16
ROUNDS = 4  # concurrent batches per side, interleaved
WAIT_S = 60.0
SIDES = ("direct", "proxy", "send")

Send = Callable[[], Awaitable[None]]
Batch = Callable[[int, int], Awaitable[tuple[list[float], float]]]
"""(requests, concurrency) -> (each request's latency in ms, wall seconds of the batch)."""


async def batch(send: Send, requests: int, concurrency: int) -> tuple[list[float], float]:
    """`requests` sends over `concurrency` workers."""
    samples: list[float] = []
    remaining = iter(range(requests))

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            await send()
            samples.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- the caller process


async def _client(kubeconfig: str, proxy_url: str, server_ca: str, cert: str, key: str) -> None:
    """The child: direct and proxy callers, one JSON command per stdin line, one JSON answer per stdout line."""
    target = from_kubeconfig(Path(kubeconfig))
    timeout = aiohttp.ClientTimeout(total=WAIT_S)
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2, ssl=target.tls),
            timeout=timeout,
            headers={"Authorization": f"Bearer {target.bearer()}"},
        ) as direct_session,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2, ssl=client_context(server_ca, cert, key)),
            timeout=timeout,
        ) as proxy_session,
    ):

        async def direct() -> None:
            async with direct_session.get(f"{target.server}{PATH}") as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"direct: HTTP {response.status}")

        async def proxy() -> None:
            async with proxy_session.get(proxy_url) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"proxy: HTTP {response.status} {body[:200]!r}")

        sends = {"direct": direct, "proxy": proxy}
        for line in sys.stdin:
            command = json.loads(line)
            samples, wall_s = await batch(sends[command["side"]], command["requests"], command["concurrency"])
            print(json.dumps({"samples_ms": samples, "wall_s": wall_s}), flush=True)


class Caller:
    """This process's end of the caller child."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, kubeconfig: Path, rig: GatewayRig) -> Caller:
        internal = rig.pki.internal_client
        args = [str(kubeconfig), rig.internal_url(PROXY_PATH), str(rig.pki.server_ca.path)]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.tunnel",
            "--client",
            *args,
            str(internal.cert),
            str(internal.key),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    def side(self, name: str) -> Batch:
        async def run(requests: int, concurrency: int) -> tuple[list[float], float]:
            assert self.process.stdin is not None and self.process.stdout is not None
            command = {"side": name, "requests": requests, "concurrency": concurrency}
            self.process.stdin.write(json.dumps(command).encode() + b"\n")
            await self.process.stdin.drain()
            async with asyncio.timeout(WAIT_S * 10):
                line = await self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"the caller process died running {name} (exit {self.process.returncode})")
            answer = json.loads(line)
            return list(answer["samples_ms"]), float(answer["wall_s"])

        return run

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        async with asyncio.timeout(WAIT_S):
            await self.process.wait()


# ---------------------------------------------------------------------------------------------- measuring


class Meter:
    """Runs batches of the three sides, keeping this process's CPU spent in proxy batches (the gateway's share:
    the proxy callers are in the child) and how many requests went through the tunnel."""

    def __init__(self, sides: dict[str, Batch]) -> None:
        self.sides = sides
        self.gateway_cpu_s = 0.0
        self.proxied = 0
        self.tunnelled = 0

    async def run(self, side: str, requests: int, concurrency: int) -> tuple[list[float], float]:
        cpu = time.process_time()
        samples, wall_s = await self.sides[side](requests, concurrency)
        if side == "proxy":
            self.gateway_cpu_s += time.process_time() - cpu
            self.proxied += requests
        if side != "direct":
            self.tunnelled += requests
        return samples, wall_s

    async def serial(self, repeat: int) -> dict[str, dict[str, float]]:
        """Each side once per round, round after round; and the paired difference from direct."""
        for side in SIDES:
            await self.run(side, 20, 1)
        samples: dict[str, list[float]] = {side: [] for side in SIDES}
        for _ in range(repeat):
            for side in SIDES:
                samples[side] += (await self.run(side, 1, 1))[0]
        base = samples["direct"]
        return {
            side: {
                **latencies(values),
                "paired_p50_over_direct_ms": round(percentile([v - b for v, b in zip(values, base)], 0.5), 3),
            }
            for side, values in samples.items()
        }

    async def concurrent(self, requests: int) -> dict[str, dict[str, float]]:
        """ROUNDS rounds, each side one batch of requests/ROUNDS at CONCURRENCY per round."""
        for side in SIDES:
            await self.run(side, CONCURRENCY * 2, CONCURRENCY)
        samples: dict[str, list[float]] = {side: [] for side in SIDES}
        wall: dict[str, float] = dict.fromkeys(SIDES, 0.0)
        for _ in range(ROUNDS):
            for side in SIDES:
                values, wall_s = await self.run(side, max(CONCURRENCY, requests // ROUNDS), CONCURRENCY)
                samples[side] += values
                wall[side] += wall_s
        return {
            side: {
                "p50_ms": round(percentile(values, 0.5), 3),
                "p99_ms": round(percentile(values, 0.99), 3),
                "rps": round(len(values) / wall[side], 1),
                "n": len(values),
            }
            for side, values in samples.items()
        }


async def _measure(workdir: Path, repeat: int) -> dict[str, Any]:
    async with connected_plane(workdir, PLANE, CR_KEY, wait_s=WAIT_S) as plane:
        caller = await Caller.start(plane.kubeconfig, plane.gateway)
        try:
            meter = Meter(
                {"direct": caller.side("direct"), "proxy": caller.side("proxy"), "send": _send(plane.gateway.gateway)}
            )
            agent_cpu = process_cpu_s(plane.agent_pid)
            figures: dict[str, Any] = {
                "requests_per_side": repeat,
                "serial": await meter.serial(repeat),
                "concurrent": await meter.concurrent(repeat * 4),
            }
            agent_cpu = process_cpu_s(plane.agent_pid) - agent_cpu
        finally:
            await caller.close()
        figures["agent_cpu_ms_per_tunnelled_request"] = round(agent_cpu * 1000 / meter.tunnelled, 3)
        figures["gateway_cpu_ms_per_proxied_request"] = round(meter.gateway_cpu_s * 1000 / meter.proxied, 3)
        return figures


def _send(gateway: Gateway) -> Batch:
    async def send() -> None:
        answer = await gateway.send(*PLANE, CR_KEY, TunnelRequest("bench", "k8s", "GET", PATH), timeout=WAIT_S)
        if answer.status_code != 200:
            raise RuntimeError(f"send: status {answer.status_code}")

    return lambda requests, concurrency: batch(send, requests, concurrency)


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        raw = asyncio.run(_measure(Path(scratch), int(os.environ.get("BENCH_TUNNEL_REQUESTS", 400))))
    serial, concurrent = raw["serial"], raw["concurrent"]
    base16 = concurrent["direct"]
    rows: list[tuple[str, str, str]] = [("path", f"GET {PATH}", "")]
    for side in SIDES:
        one, many = serial[side], concurrent[side]
        target = "baseline" if side == "direct" else ""
        rows.append((f"{side}: serial p50 / p99 (ms)", f"{one['p50_ms']} / {one['p99_ms']}", target))
        rows.append((f"{side}: {CONCURRENCY} clients p50 / p99 (ms)", f"{many['p50_ms']} / {many['p99_ms']}", target))
        rows.append((f"{side}: {CONCURRENCY} clients req/s", f"{many['rps']}", target))
    for side in SIDES[1:]:
        rows.append(
            (
                f"{side} over direct: serial paired p50 | {CONCURRENCY}-client req/s",
                f"+{serial[side]['paired_p50_over_direct_ms']:.2f} ms | {concurrent[side]['rps'] / base16['rps']:.2f}x",
                "",
            )
        )
    rows.append(("agent CPU per tunnelled request (ms)", f"{raw['agent_cpu_ms_per_tunnelled_request']}", ""))
    rows.append(("gateway CPU per proxied request (ms)", f"{raw['gateway_cpu_ms_per_proxied_request']}", ""))
    report("tunnel", rows, raw)
    return raw


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        asyncio.run(_client(*sys.argv[2:7]))
    else:
        run()
