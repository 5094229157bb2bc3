"""The control plane's reconcilers: what the store says, made true in the planes through the gateway's tunnel.

`loop.Reconciler` drives three passes: `releases` (a ReleaseBinding -> its data-plane and observability-plane
objects, applied, pruned and read back into the binding's status), `channels` (a notification channel -> its
ConfigMap + Secret in the observability plane) and `sweep` (finalizer-free delete: objects whose owner left the
store are removed from every plane). `planes` resolves plane CRs and keeps the per-plane retry backoff;
`conditions` builds the status conditions.
"""
