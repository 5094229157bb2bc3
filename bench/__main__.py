"""`make bench`: every benchmark, each against a baseline measured in the same run."""

from bench import ingest, logs_query, opensearch_ingest

if __name__ == "__main__":
    ingest.run()
    logs_query.run()
    opensearch_ingest.run()
