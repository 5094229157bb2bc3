"""One raw line of a container log file, in either format the kubelet's node layout holds, parsed without state.

- CRI (containerd, CRI-O): `<RFC3339Nano time> <stdout|stderr> <P|F>[:<more tags>] <content>`. The runtime splits
  a long line into chunks (16 KiB by default) tagged `P` (partial: continues in the next line of the same stream)
  and a final `F`. The content bytes are kept as bytes here: the runtime splits at a byte count, so a multi-byte
  character can straddle two chunks, and the content is decoded only once the chunks are joined (assembler.py).
- Docker json-file: `{"log":"...\\n","stream":"stdout","time":"..."}`. A `log` without the trailing newline is a
  partial chunk (Docker also splits at 16 KiB); the final newline is not part of the message.

Every function returns a `Fragment` or a `Rejected` with a reason from `REJECT_REASONS`, never raises on bad
input: a tail must count a bad line and keep going, since the next line is usually fine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

import orjson

from domain.timeutil import format_rfc3339, parse_rfc3339

# Why a line was dropped. Stable strings: they become metric labels.
MALFORMED: Final = "malformed"  # not `<time> <stream> <tag> <content>` (binary garbage usually lands here)
BAD_TIMESTAMP: Final = "bad_timestamp"
BAD_STREAM: Final = "bad_stream"
BAD_TAG: Final = "bad_tag"
BAD_JSON: Final = "bad_json"  # a Docker line that is not a JSON object with string `log`, `stream`, `time`
OVERLONG_JSON: Final = "overlong_json"  # a Docker line cut at the length limit: the cut JSON cannot be parsed
EMPTY: Final = "empty"
REJECT_REASONS: Final = (MALFORMED, BAD_TIMESTAMP, BAD_STREAM, BAD_TAG, BAD_JSON, OVERLONG_JSON, EMPTY)

# What was done to a line that was kept. Also metric labels.
INVALID_UTF8: Final = "invalid_utf8"  # undecodable bytes replaced by U+FFFD
TRUNCATED: Final = "truncated"  # longer than the limit: cut, with TRUNCATION_MARKER appended
REPAIR_REASONS: Final = (INVALID_UTF8, TRUNCATED)

#: Appended to a body cut at the length limit, so a reader sees that the line went on.
TRUNCATION_MARKER: Final = "...[truncated]"

_STREAMS: Final = {b"stdout": "stdout", b"stderr": "stderr"}
_STR_STREAMS: Final = {"stdout": "stdout", "stderr": "stderr"}
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


@dataclass(slots=True)
class Fragment:
    """A parsed line: the whole message (`partial` False) or one chunk of it.

    `content` is bytes for CRI (decoded after reassembly) and str for Docker (JSON has already decoded it).
    `invalid_utf8` is only ever set for Docker lines, whose bytes had to be decoded to parse the JSON at all.
    """

    ts_ns: int
    stream: str
    content: bytes | str
    partial: bool
    invalid_utf8: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


_REJECTED: Final = {reason: Rejected(reason) for reason in REJECT_REASONS}


def parse_line(line: bytes) -> Fragment | Rejected:
    """Either format, told apart by the first byte: a Docker line is a JSON object, a CRI line starts with a
    digit. One file holds one format, but deciding per line costs one comparison and needs no configuration."""
    if not line:
        return _REJECTED[EMPTY]
    if line[0] == 0x7B:  # "{"
        return parse_docker(line)
    return parse_cri(line)


def parse_cri(line: bytes) -> Fragment | Rejected:
    """A CRI line (without its newline). Extra tags after `P`/`F` (`F:x`) are ignored, as the CRI spec reserves
    them for later use."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return _REJECTED[MALFORMED]
    stream = _STREAMS.get(parts[1])
    if stream is None:
        return _REJECTED[BAD_STREAM]
    tag = parts[2]
    if tag == b"F":
        partial = False
    elif tag == b"P":
        partial = True
    elif tag[:2] in (b"F:", b"P:"):
        partial = tag[0] == 0x50  # "P"
    else:
        return _REJECTED[BAD_TAG]
    ts_ns = cri_time(parts[0])
    if ts_ns < 0:
        return _REJECTED[BAD_TIMESTAMP]
    return Fragment(ts_ns, stream, parts[3] if len(parts) == 4 else b"", partial)


def parse_cri_whole(line: bytes) -> tuple[int, str, bytes] | None:
    """The common case of `parse_cri` alone, for the tail's inner loop: a whole message (tag `F`, no extra tags)
    with a valid stream and time, as (time, stream, content); None for anything else, which `parse_cri` then
    parses or rejects. A tuple rather than a Fragment: one allocation less per line, where the tail spends most."""
    parts = line.split(b" ", 3)
    if len(parts) != 4 or parts[2] != b"F":
        return None
    stream = _STREAMS.get(parts[1])
    if stream is None:
        return None
    ts_ns = cri_time(parts[0])
    if ts_ns < 0:
        return None
    return ts_ns, stream, parts[3]


_last_second: tuple[bytes, int] = (b"", 0)


def cri_time(stamp: bytes) -> int:
    """Nanoseconds of a CRI time, or -1 when it is not RFC3339. The runtime writes UTC with a nanosecond
    fraction (`2026-01-01T10:00:01.123456789Z`, trailing zeros trimmed), and consecutive lines nearly always
    share their second, so the second is parsed once and reused (the last one is remembered) and only the
    fraction is converted per line. Anything else goes through `parse_rfc3339`, which also validates."""
    global _last_second
    if len(stamp) > 21 and stamp[19] == 0x2E and stamp[-1] == 0x5A:  # "." ... "Z"
        fraction = stamp[20:-1]
        if len(fraction) <= 9 and fraction.isdigit():
            second = stamp[:19]
            last, base = _last_second
            if second != last:
                try:
                    base = parse_rfc3339(second.decode("ascii") + "Z")
                except (UnicodeDecodeError, ValueError):
                    return -1
                _last_second = (second, base)
            return base + int(fraction) * _SCALE[len(fraction)]
    try:
        return parse_rfc3339(stamp.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return -1


_SCALE: Final[tuple[int, ...]] = tuple(10 ** (9 - digits) for digits in range(10))


def parse_docker(line: bytes, *, cut: bool = False) -> Fragment | Rejected:
    """A Docker json-file line. Invalid UTF-8 inside the JSON is replaced (and flagged) rather than rejected,
    as for CRI lines; lone surrogate escapes (`\\ud800`) are replaced too, since nothing downstream can store
    them. `cut` says the line was cut at the length limit, which makes a parse failure `overlong_json`."""
    invalid = False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        text = line.decode("utf-8", "replace")
        invalid = "\ufffd" in text and not _decodes(line)
        try:
            obj = json.loads(text)  # the standard library accepts lone surrogates, which orjson refuses
        except ValueError:
            return _REJECTED[OVERLONG_JSON if cut else BAD_JSON]
    if not isinstance(obj, dict):
        return _REJECTED[BAD_JSON]
    log, stream, time = obj.get("log"), obj.get("stream"), obj.get("time")
    if not isinstance(log, str) or not isinstance(time, str):
        return _REJECTED[BAD_JSON]
    stream = _STR_STREAMS.get(stream) if isinstance(stream, str) else None
    if stream is None:
        return _REJECTED[BAD_STREAM]
    try:
        ts_ns = parse_rfc3339(time)
    except ValueError:
        return _REJECTED[BAD_TIMESTAMP]
    if not _encodable(log):
        log = _SURROGATE.sub("\ufffd", log)
        invalid = True
    if log.endswith("\n"):
        return Fragment(ts_ns, stream, log[:-1], False, invalid)
    return Fragment(ts_ns, stream, log, True, invalid)


def cri_line(ts_ns: int, stream: str, content: bytes, partial: bool = False) -> bytes:
    """One CRI line, newline included, as containerd writes it (for tests, benchmarks and fixtures)."""
    return b"%s %s %s %s\n" % (format_rfc3339(ts_ns).encode(), stream.encode(), b"P" if partial else b"F", content)


def docker_line(ts_ns: int, stream: str, content: str, partial: bool = False) -> bytes:
    """One Docker json-file line, newline included."""
    log = content if partial else content + "\n"
    return orjson.dumps({"log": log, "stream": stream, "time": format_rfc3339(ts_ns)}) + b"\n"


def decode_content(data: bytes) -> tuple[str, bool]:
    """UTF-8 text of a message, and whether bytes had to be replaced. Strict first: valid UTF-8 is the common
    case and the strict codec is the fast one."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace"), True


def cut_utf8(data: bytes, limit: int) -> bytes:
    """At most `limit` bytes of `data`, cut at a character boundary so the cut itself adds no U+FFFD."""
    if len(data) <= limit:
        return data
    end = limit
    # Back up over continuation bytes (10xxxxxx), at most 3 of them, to the start of the cut character.
    while end > 0 and limit - end < 3 and (data[end] & 0xC0) == 0x80:
        end -= 1
    return data[:end]


def cut_text(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes of `text`, whole characters only."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return cut_utf8(data, limit).decode("utf-8", "replace")


def text_size(text: str) -> int:
    """UTF-8 length of `text`, without encoding it when no character can be wider than one byte."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False
