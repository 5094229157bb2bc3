"""Prometheus backend for metrics and runtime topology: Kubernetes-scheme and OTel-scheme series."""
