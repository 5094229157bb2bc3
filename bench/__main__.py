"""`make bench`: every benchmark, each against a baseline measured in the same run."""

from bench import ingest, logs_query

if __name__ == "__main__":
    ingest.run()
    logs_query.run()
