"""What every layer shares: records and queries (model), time (timeutil), levels (loglevel), semantic conventions
(semconv), alert rules and notification channels (alerting), identity mapping from OpenChoreo labels and OpenTelemetry resource attributes (identity), and how a message
quotes user input (echo). It imports nothing of ours, so adapters, collectors and the observer can all build on it."""
