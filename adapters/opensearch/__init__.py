"""OpenSearch backend for logs, Kubernetes events and traces, in the index layout OpenChoreo's collectors write."""
