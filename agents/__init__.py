"""Plane agents (`observer agent`): dial the cluster gateway, carry its requests to the plane's Kubernetes API, and reconcile alert rules on an observability plane."""
