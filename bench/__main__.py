"""`make bench`: every benchmark, each against a baseline measured in the same run."""

from bench import (
    adapter_hop,
    authz_pdp,
    authz_request,
    collector,
    datadog,
    ingest,
    logs_query,
    opensearch_ingest,
    patterns,
    prometheus_query,
    reconcile,
    tail,
    tunnel,
)

if __name__ == "__main__":
    ingest.run()
    tail.run()
    logs_query.run()
    patterns.run()
    adapter_hop.run()
    opensearch_ingest.run()
    prometheus_query.run()
    datadog.run()
    collector.run()
    authz_pdp.run()
    authz_request.run()
    tunnel.run()
    reconcile.run()
