"""domain/drain.py `mask`: the tricky cases, pinned to what masking gave before its patterns were rewritten for
speed (possessive quantifiers, early lookaheads, ASCII twins of the patterns, message keys marked by the quoted
pattern itself). Each row is a place where a faster spelling could mask differently: each kind at the start and
end of a line, next to punctuation and inside quotes, hex against words, integers against hex, times with
fractions, ports, blanks around JSON colons, and lines that are not ASCII (they take the Unicode patterns).
Some rows pin outputs that look wrong (`<NUM>.23x`, `<IP>.5`, an IPv6 address without a digit left alone):
they are today's behaviour, kept on purpose; changing one is a decision of its own, not a side effect."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain import drain
from domain.drain import mask

CASES = [
    # Numbers, and the integer fast path: 15 digits are a number, 16 are hex.
    ("42", "<NUM>"),
    ("took 42", "took <NUM>"),
    ("(42)", "(<NUM>)"),
    ("a=42,b=7;", "a=<NUM>,b=<NUM>;"),
    ("x42 42x 4-2", "x42 42x 4-<NUM>"),
    ("123456789012345 1234567890123456", "<NUM> <HEX>"),
    ("1,024 1.2.3 v1.2.3 v2 -5 +5", "<NUM> <NUM> v1.2.3 v2 -<NUM> +<NUM>"),
    ("total 84.23x", "total <NUM>.23x"),
    ("1. .5 1..2 3.14e10", "<NUM>. .5 <NUM>..2 <NUM>.14e10"),
    # Hex and UUIDs against words.
    (
        "cafebabe deadbeef cache deadbeef12 12deadbeef DEADBEEF12 dEADbeef12 0x1F 0XdeadBEEF 0x",
        "cafebabe deadbeef cache <HEX> <HEX> <HEX> dEADbeef12 <HEX> <HEX> 0x",
    ),
    (
        "1234567d 1234567a a1b2c3d4 a1b2c3d 00a1b2c3d4e5f607 AbCdEf0123456789",
        "<HEX> <HEX> <HEX> a1b2c3d <HEX> AbCdEf0123456789",
    ),
    (
        "123e4567-e89b-12d3-a456-426614174000 ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEF12 123e4567-e89b-12d3-a456-42661417400",
        "<UUID> <UUID> 123e4567-e89b-12d3-a456-<NUM>",
    ),
    ("id=abcdefab-cdef-abcd-efab-cdefabcdef12.", "id=<UUID>."),
    # Dates, timestamps, times.
    (
        "2024-05-01 2024-05-01T12:00:01.123Z 2024-05-01 12:00:01,5+02:00 x2024-05-01T12:00:01",
        "<TS> <TS> <TS> x<TS>",
    ),
    (
        "at 12:30:45 and 7:05:09.123456 and 12:30:45.5x and a12:30:45 and 12:30:45:00",
        "at <TS> and <TS> and <TS>.5x and a12:<NUM>:<NUM> and <NUM>:<NUM>:<NUM>:<NUM>",
    ),
    # IPv4 with ports, IPv6.
    ("10.0.0.12:8080 192.168.1.1:123456 1.2.3.4.5 999.1.1.1 [10.0.0.1]", "<IP> <IP>:<NUM> <IP>.5 <IP> [<IP>]"),
    (
        "fe80::1 ::1 :: 2001:db8::8a2e:370:7334 1:2:3:4:5:6:7:8 a::b: ::ffff:10.0.0.1 dead:beef:cafe:babe:1:2:3:4",
        "<IP> <IP> <IP> <IP> <IP> a::b: <IP>.0.0.1 <IP>",
    ),
    ("dead:beef:cafe:babe:face:feed:bead:fade", "dead:beef:cafe:babe:face:feed:bead:fade"),
    # Hosts, URLs, e-mails.
    (
        "dial db-3.internal:5432, api.example.com. and x.example.com.x and _x.example.com and @api.example.com",
        "dial <HOST>, <HOST>. and x.example.com.x and _x.example.com and @api.example.com",
    ),
    ("API.EXAMPLE.COM my_host.svc.cluster.local -bad.test", "<HOST> my_host.svc.cluster.local -bad.test"),
    (
        'fetch https://api.example.com/v1/x?y=1 "http://a.io/b" <ftp://x.org/y> s3://bucket/key',
        "fetch <URL> <STR> <<URL>> <URL>",
    ),
    ("mail bob42@example.com, a.b+c@x.io. <ops@corp.internal>", "mail <EMAIL>, <EMAIL>. <<EMAIL>>"),
    # Durations and sizes against words.
    (
        "5ms 5 ms 1.5s 10µs 3us 2h 7d 5min 12sec 100ns",
        "<DURATION> <NUM> ms <DURATION> <DURATION> <DURATION> <DURATION> <DURATION> 5min 12sec <DURATION>",
    ),
    ("12KB 3GiB 100B 5bytes 1.5MB 5 MB 7KiB 8kb 9Kb", "<SIZE> <SIZE> <SIZE> <SIZE> <SIZE> <NUM> MB <SIZE> 8kb 9Kb"),
    # Quotes, JSON and message keys (kept right after `"msg":`, after blanks, within 24 characters).
    (
        "bad value \"a b c\" and 'x y' and can't won't rock'n'roll 'a'b",
        "bad value <STR> and <STR> and can't won't rock'n'roll 'a'b",
    ),
    (
        '{"msg":"pool 3","message" : "x 4","level":"debug","lvl": "5","id":"7","k" :"v"}',
        '{"msg":"pool <NUM>","message" : "x <NUM>","level":"debug","lvl": "<NUM>","id":<STR>,"k" :<STR>}',
    ),
    (
        '{"error":"e 1","err":"e 2","caller":"c 3","logger":"l 4","severity":"s 5","event":"v 6","MSG":"m 7"}',
        '{"error":"e <NUM>","err":"e <NUM>","caller":"c <NUM>","logger":"l <NUM>","severity":"s <NUM>",'
        '"event":"v <NUM>","MSG":<STR>}',
    ),
    (
        '"msg":                    "far 1" "msg":\t"tab 2" x"msg":"glued 3" "a \\"msg":"esc 4"',
        '"msg":                    <STR> "msg":\t"tab <NUM>" x"msg":"glued <NUM>" "a \\"msg":"esc <NUM>"',
    ),
    (
        '"escaped \\" quote 5" "unterminated 6 \'single 7\' "key 8": "line\nbreak 9"',
        '<STR> <STR>key <NUM>": "line\nbreak <NUM>"',
    ),
    # Lines that are not ASCII: the Unicode patterns, Unicode digits and case folding included.
    ("café 42 at 12:30:45 from 10.0.0.1 in 5ms naïve", "café <NUM> at <TS> from <IP> in <DURATION> naïve"),
    ("٣ ٤٥ ١٢:٣٠:٤٥ ٢٠٢٤-٠٥-٠١ ١٠.٠.٠.١ ５ms", "<NUM> <NUM> <TS> <TS> <IP> <DURATION>"),
    (
        "host \u212aube.example.com and a.\u0131o and straße.example.com",
        "host <HOST> and <HOST> and straße.example.com",
    ),
    ('é {"msg":"ü 1","id":"ü 2"}', 'é {"msg":"ü <NUM>","id":<STR>}'),
]


@pytest.mark.parametrize(("line", "masked"), CASES)
def test_tricky_lines_mask_as_before(line: str, masked: str) -> None:
    assert mask(line) == masked


# What the ASCII twins must agree with their Unicode patterns on: ASCII text made of the characters that matter.
_ASCII_PIECES = st.sampled_from(
    [
        *"0123456789abcdefxABCDEFX:.,-_ /=@\"'\t",
        "ms",
        "KB",
        "GiB",
        "12:30:45",
        "2024-05-01T",
        "10.0.0.1",
        "::",
        "fe80",
        ".com",
        ".Internal",
        "db-3",
        "api.Example.COM",
        "db-3.internal:5432",
        "deadbeef",
        "0x1F",
        "123e4567-e89b-12d3-a456-426614174000",
    ]
)


@given(st.lists(_ASCII_PIECES, max_size=16).map("".join))
def test_the_ascii_patterns_match_like_the_unicode_ones_on_ascii_text(line: str) -> None:
    for ascii_pattern, unicode_pattern in (drain._CLOCK, drain._HOST, drain._NUMERIC):
        assert ascii_pattern.sub("<X>", line) == unicode_pattern.sub("<X>", line)
        assert [m.lastindex for m in ascii_pattern.finditer(line)] == [
            m.lastindex for m in unicode_pattern.finditer(line)
        ]
    assert bool(drain._HOST_HINT[0].search(line)) == bool(drain._HOST_HINT[1].search(line))
