"""The cluster gateway: agents' WebSocket tunnels (8443) and the internal proxy and plane status API (8444)."""
