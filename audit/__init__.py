"""The audit trail's producers, shared by the observer and the control plane (as access/ is): the recorder
(`trail.py`), the HTTP middleware that records state-changing calls, denials and reads of the trail (`http.py`),
and the record of an MCP tool call (`mcp.py`). The record and its JSON are domain/audit.py's."""
