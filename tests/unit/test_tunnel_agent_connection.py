"""`status.agentConnection` from the gateway's plane status (controlplane/gateway/status.py, CPN §4)."""

from __future__ import annotations

import datetime

from controlplane.gateway.service import PlaneStatus
from controlplane.gateway.status import agent_connection

T0 = datetime.datetime(2026, 12, 5, 3, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=1)
T2 = T0 + datetime.timedelta(minutes=2)


def plane(agents: int, seen: datetime.datetime | None = None) -> PlaneStatus:
    return PlaneStatus("observabilityplane", "obs", agents > 0, agents, seen)


def test_never_connected() -> None:
    assert agent_connection(None, plane(0), T0) == {
        "connected": False,
        "connectedAgents": 0,
        "message": "No agents connected",
    }


def test_connect_ha_and_disconnect_transitions() -> None:
    first = agent_connection(None, plane(1, T0), T0)
    assert first == {
        "connected": True,
        "connectedAgents": 1,
        "message": "1 agent connected",
        "lastConnectedTime": "2026-12-05T03:00:00Z",
        "lastHeartbeatTime": "2026-12-05T03:00:00Z",
    }
    steady = agent_connection(first, plane(1, T1), T1)
    assert steady["lastConnectedTime"] == "2026-12-05T03:00:00Z"  # no new connection
    assert steady["lastHeartbeatTime"] == "2026-12-05T03:01:00Z"
    ha = agent_connection(steady, plane(2, T1), T1)
    assert ha["message"] == "2 agents connected (HA mode)"
    assert ha["lastConnectedTime"] == "2026-12-05T03:01:00Z"
    gone = agent_connection(ha, plane(0), T2)
    assert gone == {
        "connected": False,
        "connectedAgents": 0,
        "message": "No agents connected",
        "lastConnectedTime": "2026-12-05T03:01:00Z",
        "lastDisconnectedTime": "2026-12-05T03:02:00Z",
        "lastHeartbeatTime": "2026-12-05T03:01:00Z",
    }
    assert agent_connection(gone, plane(0), T2 + datetime.timedelta(minutes=1)) == gone  # no second transition
