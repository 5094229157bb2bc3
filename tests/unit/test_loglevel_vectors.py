"""Level detection on raw lines, vector by vector, as OpenChoreo's logs adapter does it (adapters-notes §1.3).

Fluent Bit stores no level, so the level a user sees for a container line, and what a `logLevels` filter
finds, come from `detect_level`. The rules, in order:

1. a declared field (`level`, `lvl`, `severity`, `severityText`/`severity_text`, `levelname`, `@l`; key and
   value case-insensitive, `=` or `:`, quotes optional) preceded by the start, a space, `,` or `{`; its value
   is normalized (ERR->ERROR; CRITICAL/CRIT/PANIC/DPANIC/EMERG/EMERGENCY/ALERT->FATAL; SEVERE; WARNING->WARN;
   INFORMATION/NOTICE/CONFIG->INFO; TRACE/VERBOSE/FINE/FINER/FINEST/SILLY->DEBUG; anything else INFO), and it
   wins even when its value is unknown;
2. a klog header at the very start (`E0102 15:04:05...`: I/W/E/F -> INFO/WARN/ERROR/FATAL);
3. a bare word in the uppercased line, tried in the order ERROR, FATAL, SEVERE, WARNING|WARN, INFO, DEBUG
   (the order of the words, not their position in the line); a word followed by `=` is a key, and a word
   inside a longer word (letters, digits, `_`) is no level;
4. INFO.

The expected values were checked against the Go original (`extractLogLevel` in
observability-logs-opensearch/internal/opensearch/types.go), including the surprising ones, which are marked
"quirk": they are what OpenChoreo does, and a line must get the same level on either implementation.
"""

from __future__ import annotations

import pytest

from domain.loglevel import detect_level

VECTORS: list[tuple[str, str, str]] = [
    # (why, raw line, level)
    # --- 1. declared fields: logfmt ---------------------------------------------------------------------
    ("logfmt info", 'level=info msg="server started" port=8080', "INFO"),
    ("logfmt error", 'level=error msg="boom"', "ERROR"),
    ("logrus text, WARNING spelled out", 'time="2026-09-21T10:00:01Z" level=warning msg="disk at 91%"', "WARN"),
    ("slog text, upper case", 'time=2026-09-21T10:00:01.123Z level=WARN msg="slow request" ms=812', "WARN"),
    ("slog level with offset stops at the letters", 'time=2026-09-21T10:00:01Z level=ERROR+2 msg="x"', "ERROR"),
    ("slog DEBUG-4", "time=2026-09-21T10:00:01Z level=DEBUG-4 msg=verbose", "DEBUG"),
    ("key in any case, spaces around =", "LEVEL = Debug cache warmed", "DEBUG"),
    ("lvl key", 'lvl=crit msg="disk failure"', "FATAL"),
    ("log15 'eror' is no known spelling (quirk)", 't=2026-09-21T10:00:01Z lvl=eror msg="db down"', "INFO"),
    ("declared unknown value beats a bare ERROR", 'level=bogus msg="ERROR in payload"', "INFO"),
    ("declared beats a stronger bare word", 'level=info msg="retrying after error"', "INFO"),
    ("error=... after a declared level is just a field", 'level=info msg="request done" error=timeout', "INFO"),
    ("quoted value", 'level="warn" msg="cache stale"', "WARN"),
    ("first declared field wins", "level=debug other level=error", "DEBUG"),
    ("key inside a quoted value is not declared", 'msg="level=error was logged" level=info', "INFO"),
    ("loglevel= is no declared key, its value is a bare word", "app loglevel=error started", "ERROR"),
    # --- 1. declared fields: JSON loggers ---------------------------------------------------------------
    ("zap / slog JSON error", '{"level":"error","msg":"boom"}', "ERROR"),
    ("JSON warn", '{"level":"warn","ts":1790000000.123,"caller":"cart/main.go:42","msg":"slow"}', "WARN"),
    ("zap dpanic", '{"level":"dpanic","msg":"nil map"}', "FATAL"),
    ("JSON level not the first key", '{"ts":"2026-09-21T10:00:01Z","msg":"hello","level":"debug"}', "DEBUG"),
    ("spaces around the colon", '{"level" : "ERROR", "msg": "x"}', "ERROR"),
    ("GCP / Stackdriver severity", '{"severity":"CRITICAL","message":"out of memory"}', "FATAL"),
    ("OTel severityText, camel case", '{"severityText":"WARN","body":"retrying"}', "WARN"),
    ("severity_text, snake case", '{"severity_text":"Error","body":"x"}', "ERROR"),
    ("python-json-logger levelname", '{"asctime":"2026-09-21 10:00:01","levelname":"WARNING","message":"x"}', "WARN"),
    ("Serilog compact @l", '{"@t":"2026-09-21T10:00:01Z","@mt":"Disk {Pct}","@l":"Warning","Pct":91}', "WARN"),
    ("Serilog compact omits @l for Information", '{"@t":"2026-09-21T10:00:01Z","@mt":"Hello"}', "INFO"),
    ("winston JSON", '{"level":"info","message":"listening on 3000"}', "INFO"),
    (
        "pino numeric level is no word (quirk: 50 means error)",
        '{"level":50,"time":1790000000123,"msg":"request failed"}',
        "INFO",
    ),
    ("bunyan numeric level, bare word elsewhere", '{"name":"api","level":40,"msg":"WARN: pool exhausted"}', "WARN"),
    (
        "ECS log.level is not declared (preceded by '.'), the bare word decides",
        '{"log.level":"error","message":"x"}',
        "ERROR",
    ),
    # --- 1. normalization table --------------------------------------------------------------------------
    ("ERR", "level=err", "ERROR"),
    ("FATAL", "level=fatal", "FATAL"),
    ("PANIC", "level=panic", "FATAL"),
    ("EMERG", "severity=emerg", "FATAL"),
    ("EMERGENCY", "severity=emergency", "FATAL"),
    ("ALERT", "severity=alert", "FATAL"),
    ("SEVERE stays SEVERE", "level=severe", "SEVERE"),
    ("INFORMATION", "level=information", "INFO"),
    ("NOTICE", "severity=notice", "INFO"),
    ("CONFIG", "level=config", "INFO"),
    ("TRACE", "level=trace", "DEBUG"),
    ("VERBOSE", "level=verbose", "DEBUG"),
    ("FINE", "level=fine", "DEBUG"),
    ("FINER", "level=finer", "DEBUG"),
    ("FINEST", "level=finest", "DEBUG"),
    ("SILLY (npm)", "level=silly", "DEBUG"),
    ("single letter is unknown", "severity=W disk", "INFO"),
    # --- 2. klog headers ---------------------------------------------------------------------------------
    ("klog error", "E0102 15:04:05.000000       1 controller.go:123] sync failed", "ERROR"),
    ("klog warning", "W0921 10:00:01.123456       1 reflector.go:561] watch of *v1.Pod ended", "WARN"),
    ("klog fatal", "F0921 10:00:01.123456       1 main.go:45] cannot start", "FATAL"),
    ("klog info beats a bare error word", "I0921 10:00:01.123456       1 leader.go:88] retrying after error", "INFO"),
    ("declared field beats the klog header", 'E0921 10:00:01.123456 1 x.go:1] "probe" level=debug', "DEBUG"),
    ("not at the start: no header", " E0102 15:04:05.000000 1 x.go:1] indented", "INFO"),
    ("three digits: no header", "E102 15:04:05 x", "INFO"),
    ("no time: no header", "F1234 is a flight number", "INFO"),
    # --- 3. bare words: Java, Python, Go, Node, servers ----------------------------------------------------
    (
        "Spring Boot / logback",
        "2026-09-21 10:00:01.123  WARN 1 --- [main] o.s.b.SpringApplication : low memory",
        "WARN",
    ),
    ("log4j", "2026-09-21 10:00:01,123 ERROR [http-nio-8080-exec-1] com.acme.Cart - payment failed", "ERROR"),
    ("java.util.logging SEVERE", "SEVERE: Servlet.service() threw exception", "SEVERE"),
    ("JUL FINE is no bare word (quirk)", "FINE: cache warmed", "INFO"),
    ("Java stack frame", "\tat com.acme.Cart.checkout(Cart.java:42)", "INFO"),
    ("Python logging default format", "WARNING:root:disk almost full", "WARN"),
    ("Python logging with asctime", "2026-09-21 10:00:01,123 - cart - DEBUG - cache miss for 42", "DEBUG"),
    ("Python CRITICAL is no bare word (quirk)", "CRITICAL:root:out of memory", "INFO"),
    ("Go panic says 'runtime error'", "panic: runtime error: index out of range [3] with length 3", "ERROR"),
    ("Go stdlib log line", "2026/09/21 10:00:01 http: TLS handshake error from 10.0.0.7:51234: EOF", "ERROR"),
    ("ERROR is tried before FATAL", "fatal error: all goroutines are asleep - deadlock!", "ERROR"),
    ("PostgreSQL FATAL", "2026-09-21 10:00:01.123 UTC [42] FATAL:  password authentication failed", "FATAL"),
    ("PostgreSQL LOG is no level", "2026-09-21 10:00:01.123 UTC [1] LOG:  database system is ready", "INFO"),
    ("nginx [warn]", "2026/09/21 10:00:01 [warn] 29#29: *1 upstream response is buffered", "WARN"),
    ("nginx [notice] is no bare word", "2026/09/21 10:00:01 [notice] 1#1: start worker processes", "INFO"),
    (
        "access log with /error in the path (quirk)",
        '10.0.0.1 - - [21/Sep/2026:10:00:01 +0000] "GET /error HTTP/1.1" 500 12',
        "ERROR",
    ),
    ("Node warning", "(node:1) Warning: Accessing non-existent property 'x'", "WARN"),
    ("Node uncaught error", "Error: ENOENT: no such file or directory, open '/app/config.json'", "ERROR"),
    ("word order, not position: ERROR before WARN", "WARN retry 3 failed with ERROR", "ERROR"),
    ("INFO before DEBUG", "DEBUG dump: INFO block follows", "INFO"),
    ("[ERROR] in brackets", "[ERROR] connection reset by peer", "ERROR"),
    # --- 3. keys and longer words are not levels ---------------------------------------------------------
    ("error=timeout is a key", "request failed error=timeout", "INFO"),
    ("key with spaces before =", 'retry error = "timeout"', "INFO"),
    ("key, then a real level word", "error=nil WARN disk low", "WARN"),
    ("inside a longer word", "TERROR raised", "INFO"),
    ("plural", "ERRORS: 0, WARNINGS: 0", "INFO"),
    ("underscore joins words", "error_count=3 debug_mode=on", "INFO"),
    ("DEBUGGER is not DEBUG", "DEBUGGER attached", "INFO"),
    ("a hyphen separates words (quirk)", "took the no-error path", "ERROR"),
    ("a digit joins words", "ERROR2 is a code name", "INFO"),
    # --- 4. default ----------------------------------------------------------------------------------------
    ("plain text", "GET /healthz 200 1ms", "INFO"),
    ("empty line", "", "INFO"),
]


@pytest.mark.parametrize(("why", "line", "level"), VECTORS, ids=[why for why, _, _ in VECTORS])
def test_detect_level(why: str, line: str, level: str) -> None:
    assert detect_level(line) == level, f"{why}: {line!r}"


def test_vector_descriptions_are_unique() -> None:
    """Each vector's description is its test id, so a failure names the rule it broke."""
    whys = [why for why, _, _ in VECTORS]
    assert len(whys) == len(set(whys))
