"""`status.agentConnection` of a plane CR from the gateway's view of the plane (CPN §4 "While disconnected").

Pure, so the lead's writer (every 60 s and from Gateway.on_change) only reads the CR, calls this and puts the
result back when it differs; the transition times come from comparing with the previous value.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from controlplane.gateway.service import PlaneStatus, rfc3339


def connection_message(agents: int) -> str:
    """Upstream's wording for 0 and N > 1 agents; "1 agent connected" for one is ours (Judgement: not in the notes)."""
    if agents == 0:
        return "No agents connected"
    if agents == 1:
        return "1 agent connected"
    return f"{agents} agents connected (HA mode)"


def agent_connection(previous: Mapping[str, Any] | None, status: PlaneStatus, now: datetime.datetime) -> dict[str, Any]:
    """The new `agentConnection` object. `lastConnectedTime` moves when the agent count rises (a connection was
    made), `lastDisconnectedTime` on the drop to zero, `lastHeartbeatTime` with the gateway's last sign of life;
    each keeps its previous value otherwise."""
    before = dict(previous or {})
    before_agents = int(before.get("connectedAgents") or 0)
    out: dict[str, Any] = {
        "connected": status.connected,
        "connectedAgents": status.connected_agents,
        "message": connection_message(status.connected_agents),
    }
    for key in ("lastConnectedTime", "lastDisconnectedTime", "lastHeartbeatTime"):
        if before.get(key):
            out[key] = before[key]
    if status.connected_agents > before_agents:
        out["lastConnectedTime"] = rfc3339(now)
    if status.connected_agents == 0 and (before_agents > 0 or before.get("connected")):
        out["lastDisconnectedTime"] = rfc3339(now)
    if status.last_seen is not None:
        out["lastHeartbeatTime"] = rfc3339(status.last_seen)
    return out
