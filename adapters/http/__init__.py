"""OpenChoreo's HTTP adapter contracts (logs, tracing, metrics) as one of our backends: plugin.py (settings,
roles), client.py (calls, checked against specs.py, the three specs compiled once), wire.py (the contract's JSON
both ways, shared with observer/adapter_serve.py, which serves our backends through the same contracts),
paging.py (cursor paging emulated where an adapter has none), errors.py (error bodies, 501s, notices)."""
