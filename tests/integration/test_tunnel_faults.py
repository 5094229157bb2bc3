"""The tunnel when its parts fail (CPN §3-§4), with everything real: the kube-apiserver (`kube_api`), agent
processes (`python -m agents.run`), and the gateway's two listeners over TLS.

- an agent SIGKILLed with requests in flight: its callers (HTTP through the internal listener, and in-process
  `Gateway.send`) get a 502 when the socket drops, not a timeout, and a restarted agent serves the next request;
- the gateway restarted on the same ports: the agent redials within its backoff bound, and no requestID is
  answered twice;
- two agents of one plane share its requests (per-CR round robin); one killed, the other serves everything;
- two planes on one kube-apiserver: an agent only ever replays its own plane's requests.

Which agent replayed a request is read from the kube-apiserver itself: every agent runs as its own
ServiceAccount, and a SelfSubjectReview sent through the tunnel answers with the replaying identity. Replies are
counted per requestID where the gateway reads them (`AgentConnection.resolve`, wrapped to count, then called).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from controlplane.gateway.connections import AgentConnection, ProxyFailed
from controlplane.gateway.server import Listeners, start
from controlplane.gateway.service import Gateway
from devservers.agent import Agent, agent_up
from devservers.gateway_certs import DictTrust, GatewayPki, KeyPair, gateway_pki, issue
from devservers.kube import KubeServer
from devservers.kube_accounts import AgentAccount, agent_account, write_kubeconfig
from devservers.tls_proxy import Ca, make_ca
from tunnel.frames import TunnelRequest, TunnelResponse
from tunnel.tls import client_context, gateway_server_context, internal_server_context

WAIT_S = 60.0  # bound on every wait; never asserted on
PROXY_TIMEOUT_S = 300.0  # far past WAIT_S: a caller that only a timeout would free fails the test instead
A = ("observabilityplane", "tf-a")
B = ("observabilityplane", "tf-b")
CR = {A: "/tf-a", B: "/tf-b"}  # cluster-scoped plane CRs named after their planeID


# ---------------------------------------------------------------------------------------------- the rig


@dataclass
class Events:
    """What the gateway saw: connections registered and dropped per plane, replies read per requestID."""

    up: Counter[tuple[str, str]] = field(default_factory=Counter)
    down: Counter[tuple[str, str]] = field(default_factory=Counter)
    replies: Counter[str] = field(default_factory=Counter)


class RecordingGateway(Gateway):
    """The real Gateway, recording its connection events."""

    def __init__(self, trust: DictTrust, events: Events, **options: Any) -> None:
        super().__init__(trust, **options)
        self.events = events

    def register(self, connection: AgentConnection) -> None:
        self.events.up[(connection.plane_type, connection.plane_id)] += 1
        super().register(connection)

    def drop(self, connection: AgentConnection, reason: str) -> bool:
        dropped = super().drop(connection, reason)
        if dropped:
            self.events.down[(connection.plane_type, connection.plane_id)] += 1
        return dropped


@dataclass
class Rig:
    """A gateway on loopback that a test can stop and start again on the same ports (a restart)."""

    directory: Path
    pki: GatewayPki
    trust: DictTrust
    events: Events
    plane_cas: dict[tuple[str, str], Ca]
    gateway: RecordingGateway | None = None
    listeners: Listeners | None = None
    agent_port: int = 0
    internal_port: int = 0

    async def start(self) -> RecordingGateway:
        """A fresh Gateway (as a restarted process has), on the ports of the last run if there was one."""
        gateway = RecordingGateway(self.trust, self.events)
        self.listeners = await start(
            gateway,
            host="127.0.0.1",
            agent_port=self.agent_port,
            internal_port=self.internal_port,
            agent_ssl=gateway_server_context(self.pki.server.cert, self.pki.server.key, self.trust.all_pems()),
            internal_ssl=internal_server_context(self.pki.server.cert, self.pki.server.key, self.pki.internal_ca.path),
            proxy_timeout=PROXY_TIMEOUT_S,
        )
        self.agent_port, self.internal_port = self.listeners.agent_port, self.listeners.internal_port
        self.gateway = gateway
        return gateway

    async def stop(self) -> None:
        if self.listeners is not None:
            listeners, self.listeners = self.listeners, None
            await listeners.close()

    @property
    def live(self) -> RecordingGateway:
        assert self.gateway is not None
        return self.gateway

    def agent_cert(self, plane: tuple[str, str], name: str) -> KeyPair:
        return issue(self.plane_cas[plane], self.directory, name, client=True)

    def internal_ssl(self) -> ssl.SSLContext:
        """A caller of the internal listener: the internal CA's client certificate."""
        return client_context(self.pki.server_ca.path, self.pki.internal_client.cert, self.pki.internal_client.key)

    def proxy_url(self, plane: tuple[str, str], cr_plane: tuple[str, str], path: str) -> str:
        """`/api/proxy/...` for `plane`, naming the plane CR of `cr_plane`."""
        name = CR[cr_plane].lstrip("/")
        return f"https://127.0.0.1:{self.internal_port}/api/proxy/{plane[0]}/{plane[1]}/_cluster/{name}/k8s{path}"


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    """Counts every reply the gateway reads, per requestID on the wire, then hands it on as usual."""
    seen = Events()
    resolve = AgentConnection.resolve

    def counting(self: AgentConnection, response: TunnelResponse) -> bool:
        seen.replies[response.request_id] += 1
        return resolve(self, response)

    monkeypatch.setattr(AgentConnection, "resolve", counting)
    return seen


@pytest.fixture
async def rig(tmp_path: Path, events: Events) -> AsyncIterator[Rig]:
    trust = DictTrust()
    plane_cas = {plane: make_ca(tmp_path, f"{plane[1]}-ca") for plane in (A, B)}
    for plane, ca in plane_cas.items():
        trust.set(*plane, CR[plane], ca)
    running = Rig(tmp_path, gateway_pki(tmp_path), trust, events, plane_cas)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="module")
def accounts(kube_api: KubeServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, AgentAccount]:
    """One ServiceAccount per agent identity; every test's agents are told apart by them."""
    directory = tmp_path_factory.mktemp("tunnel-faults")
    return {
        name: agent_account(kube_api, directory, "observabilityplane", f"tf-{name}-{suffix}")
        for name, suffix in (("a1", "x1"), ("a2", "x2"), ("b", "x3"))
    }


AgentStarter = Callable[..., Agent]


@pytest.fixture
async def agents(rig: Rig) -> AsyncIterator[AgentStarter]:
    """Start agent processes; all are stopped off the event loop at the end (so the gateway, on this loop, can
    still answer their close frames) before the rig stops."""
    stack = contextlib.ExitStack()
    started: list[Agent] = []
    names = itertools.count()

    def start_agent(plane: tuple[str, str], kubeconfig: Path, cert: KeyPair | None = None) -> Agent:
        name = f"agent-{next(names)}"
        cert = cert or rig.agent_cert(plane, name)
        agent = stack.enter_context(
            agent_up(
                rig.directory,
                plane_type=plane[0],
                plane_id=plane[1],
                server_url=f"wss://127.0.0.1:{rig.agent_port}/ws",
                client_cert=cert.cert,
                client_key=cert.key,
                server_ca=rig.pki.server_ca.path,
                kubeconfig=kubeconfig,
                name=name,
            )
        )
        started.append(agent)
        return agent

    try:
        yield start_agent
    finally:
        await asyncio.gather(*(asyncio.to_thread(agent.stop) for agent in started))
        stack.close()


# ---------------------------------------------------------------------------------------------- helpers


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for a condition the test then relies on."""
    try:
        async with asyncio.timeout(WAIT_S):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def agents_connected(rig: Rig, plane: tuple[str, str], count: int) -> Callable[[], bool]:
    return lambda: rig.gateway is not None and rig.gateway.status(*plane).connected_agents == count


def username(account: AgentAccount) -> str:
    return f"system:serviceaccount:{account.namespace}:{account.name}"


WHOAMI = TunnelRequest(
    request_id="whoami",
    target="k8s",
    method="POST",
    path="/apis/authentication.k8s.io/v1/selfsubjectreviews",
    headers={"Content-Type": ["application/json"]},
    body=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode(),
)


async def whoami(gateway: Gateway, plane: tuple[str, str]) -> str:
    """The identity the kube-apiserver saw for a request that took the tunnel of `plane`."""
    answer = await gateway.send(*plane, CR[plane], WHOAMI, timeout=WAIT_S)
    assert answer.status_code == 201, (answer.status_code, answer.body[:300], answer.error)
    return str(json.loads(answer.body)["status"]["userInfo"]["username"])


class GatedRelay:
    """A TCP relay in front of the kube-apiserver whose gate the test can close: bytes that arrive while it is
    closed are held until it opens, so requests stay in flight inside the agent as long as the test wants. TLS
    passes through untouched (the serving certificate is for 127.0.0.1, so the agent still verifies it)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.gate = asyncio.Event()
        self.gate.set()
        self.held: set[int] = set()  # connections whose client-to-server bytes are being held
        self._ids = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> GatedRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(self._ids)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            try:
                await asyncio.gather(
                    self._pump(reader, upstream_writer, connection), self._pump(upstream_reader, writer, None)
                )
            finally:
                upstream_writer.close()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, connection: int | None) -> None:
        while data := await source.read(65536):
            if not self.gate.is_set():
                if connection is not None:
                    self.held.add(connection)
                await self.gate.wait()
            sink.write(data)
            await sink.drain()
        sink.close()


@contextlib.contextmanager
def counting_replies(events: Events) -> Iterator[Callable[[], int]]:
    """How many replies the gateway read since the block began."""
    before = sum(events.replies.values())
    yield lambda: sum(events.replies.values()) - before


# ---------------------------------------------------------------------------------------------- the tests


async def test_killed_agent_fails_its_callers_with_502_and_a_restarted_one_serves(
    rig: Rig, agents: AgentStarter, accounts: dict[str, AgentAccount], kube_api: KubeServer
) -> None:
    account = accounts["a1"]
    path = f"/api/v1/namespaces/{account.namespace}"
    async with (
        GatedRelay(kube_api.address) as relay,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT_S)) as http,
    ):
        kubeconfig = write_kubeconfig(
            kube_api,
            rig.directory / "relayed.kubeconfig",
            token_file=account.token_file,
            server_url=f"https://127.0.0.1:{relay.port}",
        )
        url, tls = rig.proxy_url(A, A, path), rig.internal_ssl()

        async def call() -> tuple[int, str]:
            async with http.get(url, ssl=tls) as response:
                return response.status, await response.text()

        first = agents(A, kubeconfig)
        await until(agents_connected(rig, A, 1), "the agent connected")
        assert (await call())[0] == 200

        async def send() -> tuple[int, str]:
            """The reconcilers' in-process path: a ProxyFailed (502) instead of an HTTP answer."""
            request = TunnelRequest("in-process", "k8s", "GET", path)
            try:
                answer = await rig.live.send(*A, CR[A], request, timeout=PROXY_TIMEOUT_S)
            except ProxyFailed as exc:
                return exc.status, exc.message
            return answer.status_code, answer.body.decode()

        relay.gate.clear()
        in_flight = 8
        calls = [asyncio.create_task(call() if n % 2 else send()) for n in range(in_flight)]
        await until(lambda: len(relay.held) >= in_flight, f"{in_flight} requests held between agent and apiserver")
        (connection,) = rig.live.connections.of_plane(*A)
        assert len(connection.pending) == in_flight

        first.kill()
        async with asyncio.timeout(WAIT_S):  # only a dropped socket frees them this soon (proxy timeout: 300 s)
            answers = await asyncio.gather(*calls)
        assert [status for status, _ in answers] == [502] * in_flight
        assert all(text.startswith("proxy request failed") and "no reply within" not in text for _, text in answers)
        await until(agents_connected(rig, A, 0), "the gateway dropped the dead agent")

        relay.gate.set()
        agents(A, kubeconfig)
        await until(agents_connected(rig, A, 1), "the restarted agent connected")
        status, text = await call()
        assert status == 200 and json.loads(text)["metadata"]["name"] == account.namespace
    assert all(count == 1 for count in rig.events.replies.values())


async def test_gateway_restart_agent_redials_within_its_backoff_and_no_reply_is_doubled(
    rig: Rig, agents: AgentStarter, accounts: dict[str, AgentAccount]
) -> None:
    agent = agents(A, accounts["a1"].kubeconfig)
    await until(agents_connected(rig, A, 1), "the agent connected")
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()

    async def caller() -> None:
        """Keeps asking across the restart, always through the gateway that is running now."""
        while not stop.is_set():
            try:
                name = await whoami(rig.live, A)
                outcomes[name] += 1
            except ConnectionError:  # no agent connected, or its socket went with the request on it: a 502
                outcomes["failed"] += 1
                await asyncio.sleep(0.05)

    callers = [asyncio.create_task(caller()) for _ in range(4)]
    try:
        await until(lambda: outcomes[username(accounts["a1"])] >= 20, "requests served before the restart")
        await rig.stop()
        await until(lambda: agent.failed_dials() >= 2, "the agent redialled a stopped gateway twice")
        await rig.start()
        failed_before_restart = agent.failed_dials()
        await until(agents_connected(rig, A, 1), "the agent came back")
        served = outcomes[username(accounts["a1"])]
        await until(lambda: outcomes[username(accounts["a1"])] >= served + 20, "requests served after the restart")
    finally:
        stop.set()
        await asyncio.gather(*callers)

    # every wait the agent drew stayed inside its full-jitter bound, and once the listener was back the agent's
    # next dial (at most one more, already under way when it came back) got through
    assert agent.redial_delays() and all(delay <= min(30.0, 2.0**n) for n, delay in agent.redial_delays())
    assert agent.failed_dials() - failed_before_restart <= 1
    # both ends agree on how often the tunnel came up: once, then once more after the restart
    assert agent.connects() == rig.events.up[A] >= 2
    assert rig.events.down[A] == rig.events.up[A] - 1
    assert set(outcomes) == {username(accounts["a1"]), "failed"}  # callers were refused while it was down
    # no requestID answered twice, and every caller that got an answer got one the gateway read exactly once
    assert rig.events.replies and max(rig.events.replies.values()) == 1
    assert sum(rig.events.replies.values()) >= outcomes[username(accounts["a1"])]


async def test_two_agents_share_a_plane_and_one_survives_the_others_death(
    rig: Rig, agents: AgentStarter, accounts: dict[str, AgentAccount]
) -> None:
    one, two = username(accounts["a1"]), username(accounts["a2"])
    first = agents(A, accounts["a1"].kubeconfig)
    await until(agents_connected(rig, A, 1), "the first agent connected")
    agents(A, accounts["a2"].kubeconfig)
    await until(agents_connected(rig, A, 2), "the second agent connected")

    spread = Counter([await whoami(rig.live, A) for _ in range(20)])
    assert spread == {one: 10, two: 10}  # per-CR round robin: strictly alternating

    first.kill()
    await until(agents_connected(rig, A, 1), "the gateway noticed the killed agent")
    survivors = Counter(await asyncio.gather(*(whoami(rig.live, A) for _ in range(20))))
    assert survivors == {two: 20}


async def test_an_agent_never_receives_another_planes_requests(
    rig: Rig, agents: AgentStarter, accounts: dict[str, AgentAccount], events: Events
) -> None:
    plane_a, plane_b = username(accounts["a1"]), username(accounts["b"])
    agents(A, accounts["a1"].kubeconfig)
    agents(B, accounts["b"].kubeconfig)
    await until(lambda: agents_connected(rig, A, 1)() and agents_connected(rig, B, 1)(), "both agents connected")
    (connection_a,) = rig.live.connections.of_plane(*A)
    (connection_b,) = rig.live.connections.of_plane(*B)
    assert connection_a.cr_keys == {CR[A]} and connection_b.cr_keys == {CR[B]}

    planes = [A, B] * 15
    with counting_replies(events) as replies:
        seen = await asyncio.gather(*(whoami(rig.live, plane) for plane in planes))
        assert replies() == len(planes)
    assert [name for plane, name in zip(planes, seen) if plane == A] == [plane_a] * 15
    assert [name for plane, name in zip(planes, seen) if plane == B] == [plane_b] * 15

    # naming the other plane's CR does not route there either: plane B's agent is not valid for plane A's CR
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as http:
        wrong = rig.proxy_url(B, A, f"/api/v1/namespaces/{accounts['b'].namespace}")
        async with http.get(wrong, ssl=rig.internal_ssl()) as response:
            assert response.status == 403, await response.text()
    with counting_replies(events) as replies:
        assert await whoami(rig.live, B) == plane_b
        assert replies() == 1
