"""Filter values as an aggregation: the values of one keyword field among the documents a query selects, with
counts, most frequent first, only those containing a search text (case-insensitively), at most `max_values`.

Shared by platform logs and the audit trail. Pure functions: a request body's `aggs` in, the answer's values out.

- The values are a `terms` aggregation whose `include` is a Lucene regular expression built from the ESCAPED
  search text, each cased character as a class of its cases, so a value of a multi-valued field (an actor's
  entitlements) is listed only when it matches itself, not because its document holds another that does.
- `total_values` is exact whenever the values listed are fewer than asked for (they are all of them); beyond,
  it is a `cardinality` of the field among the documents holding a matching value: a sense of scale, as the
  contract says, exact below the aggregation's precision threshold for single-valued fields.
"""

from __future__ import annotations

from typing import Any

from adapters.opensearch.queries import Clause, contains, regexp_literal
from domain.platform import FilterValue

#: Each daily index is one shard: asking each for more than the page's values makes the merged top-N counts
#: exact unless a value's count is spread very unevenly over days. Bounded: at most this many per shard.
MAX_SHARD_SIZE = 10_000
#: `cardinality` counts exactly up to this many distinct values (OpenSearch's maximum is 40,000).
PRECISION_THRESHOLD = 3_000


def case_insensitive_regexp(text: str) -> str:
    """A Lucene regular expression matching any value that contains `text`, ignoring case: each cased
    character as the class of its cases (`[aA]`: letters only, which need no escape there), every other one
    escaped where it is an operator (queries.regexp_literal; a backslash before a letter would be a class
    such as `\\d` to Lucene, so letters are never escaped)."""
    parts = []
    for char in text:
        cases = dict.fromkeys(variant for variant in (char, char.lower(), char.upper()) if len(variant) == 1)
        parts.append(f"[{''.join(cases)}]" if len(cases) > 1 else regexp_literal(char))
    return ".*" + "".join(parts) + ".*"


def values_aggs(field: str, value_search: str, max_values: int) -> dict[str, Any]:
    """The `aggs` of a filter-values search (its `size` is 0): `values` and `total`."""
    include = case_insensitive_regexp(value_search) if value_search else ".+"  # ".+": the empty value is no value
    holding: Clause = contains(field, value_search, True) if value_search else {"exists": {"field": field}}
    return {
        "values": {
            "terms": {
                "field": field,
                "size": max_values,
                "shard_size": min(MAX_SHARD_SIZE, max(max_values * 10, 500)),
                "include": include,
                "order": [{"_count": "desc"}, {"_key": "asc"}],
            }
        },
        "total": {
            "filter": holding,
            "aggs": {"distinct": {"cardinality": {"field": field, "precision_threshold": PRECISION_THRESHOLD}}},
        },
    }


def read_values(aggregations: dict[str, Any] | None, max_values: int) -> tuple[list[FilterValue], int]:
    """(values most frequent first then ascending, total_values) from a `values_aggs` answer. No aggregations at
    all (no index in the range exists yet) is no values."""
    if not aggregations:
        return [], 0
    buckets = aggregations["values"]["buckets"]
    values = [FilterValue(str(bucket["key"]), int(bucket["doc_count"])) for bucket in buckets if bucket["key"] != ""]
    values.sort(key=lambda value: (-value.count, value.value))
    values = values[:max_values]
    if len(values) < max_values:
        return values, len(values)
    return values, max(len(values), int(aggregations["total"]["distinct"]["value"]))
