"""A batch of records as compact bytes and back, for the collector's disk buffer (`collectors/buffer.py`).

Why MessagePack and why columns:

- MessagePack keeps every value a record can hold exactly: int64 nanosecond times, float64 including NaN and
  ±Inf (metric samples and staleness markers; JSON would turn them into null), bool apart from int, str apart
  from bytes, nested lists and dicts in attributes.
- A batch is stored column by column (all timestamps, then all bodies, ...): one `map` over the records per field
  to encode, one `map(LogRecord, *columns)` to decode, which is about twice as fast as a tuple per record.
- Identities are stored once per batch in a table and referenced by index. A batch usually comes from a handful
  of pods, and the 12 strings of an identity would otherwise be most of a short log line's bytes.
- Each section names its fields, so a buffer written by an older version of the model still decodes after an
  upgrade that adds (with a default), drops or reorders fields; when the names match the current model, decoding
  takes the positional fast path.
- Audit records (from trusted producers only: collectors/audit.py) travel as a fifth section, a list of their
  JSON documents (`domain.audit.audit_document`, their one shape), present only when the batch has any, so
  frames written before audit records existed decode unchanged.
- An identity's `labels` (a tuple of pairs) is stored as a list of pairs and made a tuple of tuples again on
  decode, so a decoded identity equals (and hashes as) the one encoded.
- A producer's *mark* may travel with the batch, as an optional last element of the envelope:
  `[FORMAT, batch_id, identities, sections, [producer, mark bytes]]`. The tail stores its checkpoint there, so
  the checkpoint is durable exactly when the lines it covers are (collectors/pipeline.py says why). Batches
  without one keep the four-element envelope, so frames written before marks existed decode unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import msgpack

from domain.audit import AuditRecord, audit_document, audit_from_document
from domain.model import EventRecord, Identity, LogRecord, MetricKind, MetricPoint, SpanRecord

#: Bumped only for a change that field names cannot describe (the layout of the envelope itself).
FORMAT = 1


class CodecError(ValueError):
    """Bytes that are not a batch this codec wrote, or a batch whose values cannot be stored exactly."""


@dataclass(slots=True)
class Batch:
    """What one `TelemetrySink.write` carries: a batch id (so a redelivered batch is a no-op downstream) and its
    records."""

    batch_id: str
    logs: list[LogRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.logs) + len(self.events) + len(self.spans) + len(self.metrics) + len(self.audit)


Column = list[Any]


@dataclass(frozen=True, slots=True)
class _Schema:
    """How one record type becomes columns: its fields in constructor order, and the few columns whose stored
    form differs from the Python value (identities by index, enums by value, tuples as arrays)."""

    cls: type
    names: tuple[str, ...]
    getters: tuple[Callable[[Any], Any], ...]
    decoders: dict[str, Callable[[Column], Column]]

    @classmethod
    def of(cls, record_type: type, decoders: dict[str, Callable[[Column], Column]] | None = None) -> _Schema:
        names = tuple(f.name for f in dataclasses.fields(record_type))
        return cls(record_type, names, tuple(attrgetter(n) for n in names), decoders or {})


_KINDS = {kind.value: kind for kind in MetricKind}


def _tuples(column: Column) -> Column:
    return [tuple(item) for item in column]


def _metric_kinds(column: Column) -> Column:
    return [_KINDS[item] for item in column]


_SECTIONS: tuple[tuple[str, _Schema], ...] = (
    ("logs", _Schema.of(LogRecord)),
    ("events", _Schema.of(EventRecord)),
    ("spans", _Schema.of(SpanRecord)),
    (
        "metrics",
        _Schema.of(MetricPoint, {"kind": _metric_kinds, "bounds": _tuples, "bucket_counts": _tuples}),
    ),
)
_IDENTITY_FIELDS = tuple(f.name for f in dataclasses.fields(Identity))
_identity_row = attrgetter(*_IDENTITY_FIELDS)


#: A producer's name and its opaque mark (the tail's checkpoint), stored with a batch.
Mark = tuple[str, bytes]


def encode(batch: Batch, mark: Mark | None = None) -> bytes:
    """The batch (and the producer's mark, if any) as bytes. Raises CodecError for a value MessagePack cannot hold
    exactly (an int beyond 64 bits, an object of another type)."""
    identities: dict[Identity, int] = {}
    sections: list[list[Any] | None] = []
    for name, schema in _SECTIONS:
        records: Sequence[Any] = getattr(batch, name)
        if not records:
            sections.append(None)
            continue
        columns = [
            _identity_column(records, identities) if field_name == "identity" else list(map(getter, records))
            for field_name, getter in zip(schema.names, schema.getters)
        ]
        sections.append([schema.names, columns])
    if batch.audit:
        sections.append([audit_document(record) for record in batch.audit])
    table = [_identity_row(identity) for identity in identities]
    envelope = [FORMAT, batch.batch_id, [_IDENTITY_FIELDS, table], sections]
    if mark is not None:
        producer, value = mark
        envelope.append([producer, bytes(value)])
    try:
        packed: bytes = msgpack.packb(envelope)  # msgpack is untyped; packb returns bytes
        return packed
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"batch {batch.batch_id!r} holds a value that cannot be stored: {exc}") from exc


def decode(payload: bytes | memoryview) -> Batch:
    """The batch `encode` made. Raises CodecError for anything else."""
    try:
        # strict_map_key off: whatever key encode accepted must decode too, or an accepted batch could not be read
        envelope = msgpack.unpackb(payload, strict_map_key=False)
        if len(envelope) == 5:
            envelope = envelope[:4]  # the producer's mark: `read_mark`'s business, not the records'
        version, batch_id, (identity_names, table), sections = envelope
        if version != FORMAT:
            raise CodecError(f"batch format {version} is not {FORMAT}")
        identity_columns = [list(col) for col in zip(*table)]
        if identity_columns and "labels" in identity_names:
            at = list(identity_names).index("labels")
            identity_columns[at] = [tuple(map(tuple, labels)) for labels in identity_columns[at]]
        identities = _build(Identity, _IDENTITY_FIELDS, identity_names, identity_columns)
        batch = Batch(batch_id)
        if len(sections) == len(_SECTIONS) + 1:  # the audit section
            batch.audit = [audit_from_document(document) for document in sections.pop()]
        for (name, schema), section in zip(_SECTIONS, sections, strict=True):
            if section is not None:
                setattr(batch, name, _decode_section(schema, section, identities))
        return batch
    except CodecError:
        raise
    except Exception as exc:  # msgpack's own errors, a wrong shape, a record type refusing its fields
        raise CodecError(f"not a batch: {exc}") from exc


def read_mark(payload: bytes | memoryview) -> Mark | None:
    """The producer's mark stored with a batch `encode` made, or None, without building any record: the buffer
    reads the marks of every frame when it opens. Raises CodecError for bytes that are not such a batch."""
    unpacker = msgpack.Unpacker(strict_map_key=False)
    unpacker.feed(payload)
    try:
        length = unpacker.read_array_header()
        if length != 5:
            return None
        if unpacker.unpack() != FORMAT:
            raise CodecError("not a batch of this format")
        for _ in range(3):  # batch id, identities, sections
            unpacker.skip()
        producer, value = unpacker.unpack()
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"not a batch: {exc}") from exc
    if not isinstance(producer, str) or not isinstance(value, bytes):
        raise CodecError("a mark is a producer name and bytes")
    return producer, value


def _identity_column(records: Sequence[Any], table: dict[Identity, int]) -> list[int]:
    """Indices into the batch's identity table. Records of one batch mostly share one Identity object, so the
    identity check skips hashing 12 strings per record."""
    column: list[int] = []
    last: Identity | None = None
    index = 0
    for identity in map(_get_identity, records):
        if identity is not last:
            last, index = identity, table.setdefault(identity, len(table))
        column.append(index)
    return column


_get_identity = attrgetter("identity")


def _decode_section(schema: _Schema, section: list[Any], identities: list[Identity]) -> list[Any]:
    names, columns = section
    for position, name in enumerate(names):
        if name == "identity":
            columns[position] = [identities[index] for index in columns[position]]
        elif name in schema.decoders:
            columns[position] = schema.decoders[name](columns[position])
    return _build(schema.cls, schema.names, names, columns)


def _build(cls: type, current: tuple[str, ...], stored: Sequence[str], columns: list[Column]) -> list[Any]:
    """Records from columns. When the stored field names are those of the current model, positionally (fast);
    otherwise by name, so fields the model gained take their defaults and fields it lost are ignored."""
    if not columns:  # an empty identity table
        return []
    if tuple(stored) == current:
        return list(map(cls, *columns))
    known = [(name, column) for name, column in zip(stored, columns) if name in current]
    names = [name for name, _ in known]
    return [cls(**dict(zip(names, values))) for values in zip(*(column for _, column in known))]
