"""Receivers and metadata sources that talk to the Kubernetes API (through the official `kubernetes` client):
`pods.PodCache` (this node's pods, the Enricher's metadata) and `events.EventsReceiver` (core/v1 Events)."""
