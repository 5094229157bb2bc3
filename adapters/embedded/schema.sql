-- The embedded backend: one SQLite file in WAL mode holds every kind of telemetry.
-- Records point at a `streams` row (who produced them: scope names and UIDs, pod, container, workflow run, and
-- where it ran in Kubernetes), so a scope or placement filter is a small lookup in `streams` followed by index
-- range scans on (stream_id, time).
-- PRAGMA user_version is the layout's version (migrations.py brings an older file up to it on open).

CREATE TABLE IF NOT EXISTS streams (
  id              INTEGER PRIMARY KEY,
  namespace       TEXT NOT NULL,
  project         TEXT NOT NULL,
  project_uid     TEXT NOT NULL,
  component       TEXT NOT NULL,
  component_uid   TEXT NOT NULL,
  environment     TEXT NOT NULL,
  environment_uid TEXT NOT NULL,
  pod             TEXT NOT NULL,
  pod_namespace   TEXT NOT NULL,
  container       TEXT NOT NULL,
  workflow_run    TEXT NOT NULL,
  task            TEXT NOT NULL,
  cluster         TEXT NOT NULL DEFAULT '',
  node            TEXT NOT NULL DEFAULT '',
  pod_ip          TEXT NOT NULL DEFAULT '',
  image           TEXT NOT NULL DEFAULT '',
  labels          TEXT NOT NULL DEFAULT '{}',  -- the pod's labels, canonical JSON (sorted keys)
  UNIQUE (namespace, project, project_uid, component, component_uid, environment, environment_uid,
          pod, pod_namespace, container, workflow_run, task, cluster, node, pod_ip, image, labels)
);
CREATE INDEX IF NOT EXISTS streams_by_scope ON streams (namespace, project_uid, component_uid, environment_uid);
CREATE INDEX IF NOT EXISTS streams_by_placement ON streams (cluster, pod_namespace, pod, container);

CREATE TABLE IF NOT EXISTS logs (
  id        INTEGER PRIMARY KEY,
  stream_id INTEGER NOT NULL,
  ts_ns     INTEGER NOT NULL,
  level     TEXT NOT NULL,
  body      TEXT NOT NULL,
  trace_id  TEXT NOT NULL,
  span_id   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_stream_time ON logs (stream_id, ts_ns);
CREATE INDEX IF NOT EXISTS logs_by_stream_level ON logs (stream_id, level, ts_ns);

-- Trigram, case-sensitive: a quoted phrase matches exactly the lines that contain it, as a substring, with
-- the index doing the work (the upstream OpenSearch adapter's `*phrase*` wildcard semantics).
-- The index is filled behind ingest, not inside it (trigram indexing is the most expensive step of a write):
-- rows with id > fts_state.indexed_upto are not indexed yet, and queries scan that short tail directly.
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5 (
  body, content = 'logs', content_rowid = 'id', tokenize = 'trigram case_sensitive 1'
);
CREATE TABLE IF NOT EXISTS fts_state (
  only_row     INTEGER PRIMARY KEY CHECK (only_row = 1),
  indexed_upto INTEGER NOT NULL
);
INSERT OR IGNORE INTO fts_state (only_row, indexed_upto) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS logs_fts_delete AFTER DELETE ON logs
WHEN old.id <= (SELECT indexed_upto FROM fts_state) BEGIN
  INSERT INTO logs_fts (logs_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

CREATE TABLE IF NOT EXISTS events (
  id               INTEGER PRIMARY KEY,
  stream_id        INTEGER NOT NULL,
  ts_ns            INTEGER NOT NULL,
  type             TEXT NOT NULL,
  reason           TEXT NOT NULL,
  message          TEXT NOT NULL,
  object_kind      TEXT NOT NULL,
  object_name      TEXT NOT NULL,
  object_namespace TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_stream_time ON events (stream_id, ts_ns);

CREATE TABLE IF NOT EXISTS spans (
  trace_id       TEXT NOT NULL,
  span_id        TEXT NOT NULL,
  parent_span_id TEXT NOT NULL,
  stream_id      INTEGER NOT NULL,
  name           TEXT NOT NULL,
  kind           TEXT NOT NULL,
  start_ns       INTEGER NOT NULL,
  end_ns         INTEGER NOT NULL,
  status_code    TEXT NOT NULL,
  status_message TEXT NOT NULL,
  attributes     TEXT NOT NULL,  -- JSON object
  resource       TEXT NOT NULL,  -- JSON object
  PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_by_stream_time ON spans (stream_id, start_ns);

-- Metric series: one row per (name, stream, attribute set). Points of sums and histograms are stored as
-- deltas (the increase since the previous point), so a rate is SUM(delta) / step whatever the producer's
-- temporality; `last_*` keep the previous cumulative sample to compute the next delta.
CREATE TABLE IF NOT EXISTS metric_series (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL,
  kind        TEXT NOT NULL,
  stream_id   INTEGER NOT NULL,
  attributes  TEXT NOT NULL,  -- canonical JSON (sorted keys)
  last_start_ns INTEGER NOT NULL DEFAULT 0,
  last_value  REAL NOT NULL DEFAULT 0,
  last_count  REAL NOT NULL DEFAULT 0,
  last_sum    REAL NOT NULL DEFAULT 0,
  last_buckets TEXT NOT NULL DEFAULT '[]',
  UNIQUE (name, stream_id, attributes)
);
CREATE TABLE IF NOT EXISTS metric_points (
  series_id INTEGER NOT NULL,
  ts_ns     INTEGER NOT NULL,
  value     REAL NOT NULL,  -- gauge value or sum delta
  count     REAL NOT NULL,  -- histogram observations in this delta
  sum       REAL NOT NULL,  -- histogram sum in this delta
  PRIMARY KEY (series_id, ts_ns)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_buckets (
  series_id INTEGER NOT NULL,
  ts_ns     INTEGER NOT NULL,
  le        REAL NOT NULL,  -- upper bound; the overflow bucket has le = +Inf
  count     REAL NOT NULL,  -- observations in this bucket in this delta (not cumulative)
  PRIMARY KEY (series_id, ts_ns, le)
) WITHOUT ROWID;

-- Names and UIDs of namespaces, projects, components and environments: declared in a file or learned from
-- telemetry. A component name is unique within its namespace (as in OpenChoreo), so the key leaves out project.
CREATE TABLE IF NOT EXISTS registry (
  kind      TEXT NOT NULL,  -- namespace | project | component | environment
  namespace TEXT NOT NULL,  -- "" for a namespace row
  name      TEXT NOT NULL,
  uid       TEXT NOT NULL,
  project   TEXT NOT NULL DEFAULT '',
  declared  INTEGER NOT NULL DEFAULT 0,
  seen_ns   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;

-- The audit trail (domain/audit.py), apart from application logs: one row per record, `event_id` unique so a
-- redelivered record is stored once. The filter columns are the record's own; `document` is the whole record
-- (audit_document), `search_text` its values one per line (what a phrase is found in, never a JSON key).
CREATE TABLE IF NOT EXISTS audit_records (
  id                   INTEGER PRIMARY KEY,
  event_id             TEXT NOT NULL UNIQUE,
  time_ns              INTEGER NOT NULL,
  actor_id             TEXT NOT NULL,
  actor_type           TEXT NOT NULL,
  actor_issuer         TEXT NOT NULL,
  actor_session_id     TEXT NOT NULL,
  actor_entitlements   TEXT NOT NULL,  -- JSON array of strings
  resource_type        TEXT NOT NULL,
  resource_namespace   TEXT NOT NULL,
  resource_environment TEXT NOT NULL,
  resource_project     TEXT NOT NULL,
  resource_component   TEXT NOT NULL,
  resource_resource    TEXT NOT NULL,
  resource_name        TEXT NOT NULL,
  action               TEXT NOT NULL,
  category             TEXT NOT NULL,
  result               TEXT NOT NULL,
  producer             TEXT NOT NULL,
  surface              TEXT NOT NULL,
  operation_id         TEXT NOT NULL,
  source_ip            TEXT NOT NULL,
  user_agent           TEXT NOT NULL,
  request_id           TEXT NOT NULL,
  document             TEXT NOT NULL,  -- JSON object
  search_text          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_records (time_ns, event_id);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit_records (actor_id, time_ns);

-- Batches already applied, so a retried delivery is a no-op (at-least-once delivery, exactly-once storage).
CREATE TABLE IF NOT EXISTS applied_batches (
  batch_id   TEXT PRIMARY KEY,
  applied_ns INTEGER NOT NULL
) WITHOUT ROWID;
