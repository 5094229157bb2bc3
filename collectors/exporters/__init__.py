"""Exporters of ours that are not a backend: sinks that ship the collector's buffered batches elsewhere
(`otlp.py`: OTLP/HTTP to another collector or the all-in-one)."""
