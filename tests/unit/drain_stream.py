"""A generated log stream with known templates: what the patterns tests measure accuracy against.

Twenty templates of the kinds services print (HTTP access, auth, database, queue, cache, JSON, klog-style),
some sharing their length and leading tokens, filled with the variables masking must catch (numbers, hex and
UUID ids, IPs, hosts, e-mails, durations, sizes, quoted strings, paths) and with plain words it cannot (names,
states), which the clustering must wildcard.
"""

from __future__ import annotations

import random
import uuid

TEMPLATES: tuple[tuple[str, str], ...] = (
    ("INFO", "GET /api/items/{n} returned 200 in {ms}ms"),
    ("INFO", "POST /api/orders returned 201 in {ms}ms for customer {name}"),
    ("INFO", "user session started for {name} from {ip}"),
    ("INFO", "user session ended for {name} after {dur} idle"),
    ("WARN", "slow query on table orders took {ms}ms (threshold 500ms) request_id={hex}"),
    ("ERROR", "connection timeout after {ms}ms to {host} while processing request_id={hex}"),
    ("ERROR", "payment declined for order {n}: card {state} (gateway code {code})"),
    ("INFO", "order {n} placed by {email}: {k} items, total {price} EUR"),
    ("DEBUG", "cache miss for key user:{n}:cart, loading from shard {k}"),
    ("DEBUG", "cache hit for key session:{uuid} in {dur}"),
    ("INFO", "uploaded file {path} ({size}) to bucket {name}"),
    ("WARN", "retrying request {uuid} to {url} (attempt {k} of 5)"),
    ("ERROR", "failed to parse config value {quoted} for key {name}: unexpected token"),
    ("INFO", "worker {k} picked job {uuid} from queue {name} after waiting {dur}"),
    ("INFO", "worker {k} finished job {uuid} in {dur} with status {state}"),
    ("DEBUG", '{{"level":"debug","msg":"pool stats","active":{k},"idle":{n},"waiting":0}}'),
    ("INFO", '{{"level":"info","msg":"request served","path":"/v1/users/{n}","status":200,"took":"{dur}"}}'),
    ("WARN", "disk usage on /var/lib/data at {k}% ({size} free)"),
    ("INFO", "I1205 {time} {k} controller.go:{n}] Reconciling deployment {name} in namespace {name}"),
    ("ERROR", "panic recovered in handler {path}: runtime error: index out of range [{k}] with length {k}"),
)

_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar")
_STATES = ("expired", "stolen", "blocked", "declined", "succeeded", "failed", "cancelled")


def _values(rng: random.Random) -> dict[str, object]:
    return {
        "n": rng.randrange(10**6),
        "ms": rng.randrange(5, 3000),
        "k": rng.randrange(1, 64),
        "code": rng.randrange(10, 99),
        "name": rng.choice(_NAMES) + rng.choice(("", "-svc", "-prod", "2")),
        "state": rng.choice(_STATES),
        "ip": ".".join(str(rng.randrange(1, 255)) for _ in range(4)),
        "hex": f"{rng.getrandbits(64):016x}",
        "uuid": uuid.UUID(int=rng.getrandbits(128)),
        "host": f"db-{rng.randrange(9)}.{rng.choice(('internal', 'example.com', 'svc.cluster.local'))}:5432",
        "email": f"{rng.choice(_NAMES)}{rng.randrange(100)}@example.com",
        "dur": f"{rng.randrange(1, 900)}{rng.choice(('ms', 's', 'm'))}",
        "size": f"{rng.randrange(1, 999)}{rng.choice(('KB', 'MB', 'GiB'))}",
        "price": f"{rng.randrange(1, 999)}.{rng.randrange(100):02d}",
        "path": f"/srv/{rng.choice(_NAMES)}/{rng.randrange(10**4)}/report-{rng.randrange(99)}.csv",
        "url": f"https://{rng.choice(('api', 'auth', 'cdn'))}.example.com/v{rng.randrange(1, 4)}/x?id={rng.randrange(99)}",
        "quoted": '"' + " ".join(rng.choice(_NAMES) for _ in range(rng.randrange(1, 4))) + '"',
        "time": f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**6):06d}",
    }


def stream(
    count: int, seed: int = 20, templates: tuple[tuple[str, str], ...] = TEMPLATES
) -> list[tuple[int, str, str]]:
    """`count` lines as (true template index, level, line), templates drawn uniformly at random."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        index = rng.randrange(len(templates))
        level, template = templates[index]
        lines.append((index, level, template.format(**_values(rng))))
    return lines
