"""Datadog as a backend: logs, Kubernetes events and traces read through Datadog's search APIs, and the sink
that delivers our collector's records to Datadog's intakes (see plugin.py)."""
