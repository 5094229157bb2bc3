"""Log templates: masking the variable parts of a line, and Drain-style online clustering of the result.

Masking first replaces what obviously varies (numbers, hex, UUIDs, IPs, hosts, URLs, e-mails, quoted values,
durations, sizes, timestamps) with a mask such as `<NUM>`, so that most lines of one kind become the very same
string. Drain (He et al., ICWS 2017) then clusters what is left: lines are routed through a fixed-depth prefix
tree (token count, then the first `depth` tokens), compared with the templates in the leaf by the share of
equal tokens, and either merged into the most similar template (differing positions become `<*>`) or start a
new one. Everything is bounded: the number of templates, the children of a tree node (beyond: the `<*>` child)
and the clusters of a leaf; a line that finds no room goes to a catch-all template of its token count, counted,
never dropped. A line's cluster id never changes and a template only ever generalizes, so a masked line once
assigned can be looked up again in a bounded cache, which is the common case and makes the whole thing fast.

Pure Python and pure domain: the embedded backend runs it on every stored line, the observer on samples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: What a differing position of a template shows.
WILDCARD = "<*>"
#: Lines are masked and tokenized up to this many characters, and at most this many tokens are compared (a
#: longer line's rest is one trailing `<*>`): the cost of a line is bounded whatever it holds.
MAX_LINE_CHARS = 4096
MAX_TOKENS = 64

_TLDS = (
    "com|net|org|io|dev|app|cloud|ai|co|uk|de|fr|nl|eu|us|info|biz|local|localhost|internal|lan|corp|home|svc|"
    "cluster|intranet|example|test|invalid"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"

# Masking is a few passes, each skipped when the line cannot hold what it masks (most lines skip most), in
# this order: what could contain another kind comes first (a URL holds a host and numbers, an e-mail a host, a
# timestamp numbers). One combined pattern would be simpler and is several times slower: every alternative is
# tried at every position of the line. Masks never contain digits, dots, quotes, `@` or `:`, so a later pass
# never matches inside an earlier one's mask.
#
# Masking runs on every stored line, beside ingest, so the patterns are written for the regex engine (each
# trick below is exact: the output is the same as the plain spelling's, only cheaper to get):
# - A pattern tried at every position opens with a cheap check that drops most positions before any
#   alternative is tried (`\b(?=[\da-fA-F])`: a word start that could begin a number); one that opens with a
#   literal (`"`, `:`, `.`) is skipped through to that character at C speed.
# - A quantifier that could only give characters back in vain is possessive (`*+`, `++`) or atomic
#   (`(?>...)`): a candidate that is no match fails at once instead of backtracking through every split.
# - The passes that run on most lines are compiled twice: with re.ASCII for ASCII lines (nearly all: classes
#   are then bitmaps, much cheaper than Unicode categories) and without for the others. Their sources use no
#   `\s` and no case folding outside `(?i:...)`, so on ASCII text both match the same.
# - A match's mask is looked up by the number of the group that matched (see `_masker`), and the quoted pass
#   marks message values itself, so that the Python called for each masked part does almost nothing.

#: Quoted values of these JSON keys are the message itself, not a variable: kept (and masked inside).
_MESSAGE_KEY_NAMES = ("msg", "message", "event", "level", "lvl", "severity", "logger", "caller", "error", "err")
_MESSAGE_KEYS = re.compile(r"\"(?:" + "|".join(_MESSAGE_KEY_NAMES) + r")\"\s*:\s*$")
_RIGHT_AFTER_MESSAGE_KEY = "|".join(f'(?<="{key}":")' for key in _MESSAGE_KEY_NAMES)
_QUOTED = re.compile(
    # "...": not after a word or a backslash, not a key; group `kept` marks a value right after `"msg":` etc.
    r"\"(?<![\w\\]\")(?:(?<=\":\")(?:" + _RIGHT_AFTER_MESSAGE_KEY + r")(?P<kept>))?"
    r"[^\"\\\n]*+(?:\\.[^\"\\\n]*+)*+\"(?!\s*:)"
    r"|'(?<!\w')[^'\n]*+'(?!\w)"  # '...': not the apostrophes of can't ... won't
)
# Both start a run of these characters that ends at the `@`, or at the `:` of `://`: other words fail at once.
_LINKS = re.compile(
    r"\b(?=[A-Za-z0-9._%+-]*+[@:])"
    r"(?:(?P<URL>[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+)"
    r"|(?P<EMAIL>[A-Za-z0-9._%+-]+@" + _LABEL + r"(?:\." + _LABEL + r")+\b))"
)


def _compiled(source: str, unicode_flags: int = 0) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """`source` compiled for ASCII lines and for the others (see above). In the ASCII one a class's `\\d` is
    spelt `0-9`: the same there, and a class holding a category is no bitmap."""
    return re.compile(source.replace(r"[\d", "[0-9"), re.ASCII), re.compile(source, unicode_flags)


_HEX4 = r"[0-9a-fA-F]{1,4}+"
_IP6 = (
    rf"(?:{_HEX4}:){{7}}{_HEX4}"
    rf"|(?:{_HEX4}:){{1,6}}:(?:{_HEX4}(?::{_HEX4}){{0,5}})?"
    rf"|::(?:{_HEX4}(?::{_HEX4}){{0,6}})?"
)
# A timestamp may follow anything; a time or an IPv6 address neither a word character nor a colon, and both
# hold a colon within their first five characters.
_CLOCK = _compiled(
    r"(?=[\da-fA-F:])(?:(?P<TS>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"|(?<![\w:])(?=[\da-fA-F]{0,4}+:)(?:(?P<TIME>\d{1,2}+:\d{2}:\d{2}(?:[.,]\d++)?)|(?P<IP6>" + _IP6 + r"))(?![\w:]))"
)
#: Times and IPv6 addresses hold a colon between digits, or `::`: most lines with a colon hold neither.
_DIGIT_COLON_DIGIT = re.compile(r":(?<=\d:)\d")
_HOST_HINT = _compiled(r"\.(?=[A-Za-z])(?i:" + _TLDS + r")\b", re.IGNORECASE)
# A host starts a run of label characters (`\b(?<![.@-])` before a letter or digit: not after a word
# character, a dot, `@` or `-`), and its first label is followed by a dot: a word without one fails at once.
_HOST = _compiled(
    r"\b(?<![.@-])(?=[A-Za-z0-9-]*+\.)" + _LABEL + r"(?:\." + _LABEL + r")*\.(?i:" + _TLDS + r")(?::\d{1,5})?"
    r"\b(?!\.\w)",
    re.IGNORECASE,
)
# Numeric kinds start a word (not after a dot) with a digit, or with a hex letter whose hex run holds a digit
# (`cache` fails at once), and end one; alternatives are tried in order, the first that fits wins.
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_NUMERIC = _compiled(
    r"\b(?=[\da-fA-F])(?<!\.)(?:(?=\d)(?:"
    # First, and most matches: a plain integer (short of hex's 16 digits), which no kind below could take.
    r"(?P<INT>\d{1,15}+(?![\w.,-]))"
    # These four need a dash, dot, x or hex letter right after the leading digits, or 16 digits.
    r"|(?=\d*+[-.xXa-fA-F]|\d{16})(?:(?P<UUID>" + _UUID + r")"
    r"|(?P<DATE>\d{4}-\d{2}-\d{2})"
    r"|(?P<IP>\d{1,3}+\.(?:\d{1,3}+\.){2}\d{1,3}+(?::\d{1,5}+)?)"
    r"|(?P<HEX>0[xX][0-9a-fA-F]++|[0-9a-f]{16,}+|[0-9A-F]{16,}+"
    r"|(?=[0-9]*+[a-f])[0-9a-f]{8,15}+|(?=[0-9]*+[A-F])[0-9A-F]{8,15}+))"
    r"|(?P<DURATION>(?>\d+(?:\.\d+)?)(?:ns|us|µs|ms|s|m|h|d))"
    r"|(?P<SIZE>(?>\d+(?:\.\d+)?)(?:[KMGTP]i?B|B|bytes))"
    r"|(?P<NUM>\d++(?:[.,]\d++)*)"
    r")|(?=[a-fA-F][a-fA-F-]*+\d)(?:"
    r"(?P<UUID_>" + _UUID + r")"
    r"|(?P<HEX_>[0-9a-f]{16,}+|[0-9A-F]{16,}+|(?=[a-f]*+\d)[0-9a-f]{8,15}+|(?=[A-F]*+\d)[0-9A-F]{8,15}+)"
    r"))(?![\w-])"
)
_MASK_OF = {
    "URL": "<URL>",
    "EMAIL": "<EMAIL>",
    "TS": "<TS>",
    "TIME": "<TS>",
    "DATE": "<TS>",
    "IP6": "<IP>",
    "IP": "<IP>",
    "UUID": "<UUID>",
    "UUID_": "<UUID>",
    "HEX": "<HEX>",
    "HEX_": "<HEX>",
    "DURATION": "<DURATION>",
    "SIZE": "<SIZE>",
    "INT": "<NUM>",
    "NUM": "<NUM>",
}


def _masker(pattern: re.Pattern[str]) -> Callable[[re.Match[str]], str]:
    """The replacement of a match of `pattern`: the mask of the kind (the named group) that matched, found by
    the group's number, which a match holds (its name is looked up from the number). It runs for every
    masked part of every line."""
    masks = [""] * (pattern.groups + 1)
    for name, number in pattern.groupindex.items():
        masks[number] = _MASK_OF[name]
    return lambda match: masks[match.lastindex or 0]


# The ASCII and the Unicode pattern of a pass number their groups alike.
_LINKS_MASK, _CLOCK_MASK, _NUMERIC_MASK = _masker(_LINKS), _masker(_CLOCK[0]), _masker(_NUMERIC[0])


def _quoted(match: re.Match[str]) -> str:
    """`<STR>`, or the match itself when it is the value of a message key. The pattern marks a value right
    after `"msg":` and the like; after `":` there is no other, after blanks around the colon the key is
    looked up in the 24 characters before the value."""
    if match.lastindex:
        return match.group()
    line, start = match.string, match.start()
    if line[start] == '"' and line[start - 2 : start] != '":' and _MESSAGE_KEYS.search(line, max(0, start - 24), start):
        return match.group()
    return "<STR>"


def mask(line: str) -> str:
    """`line` (its first MAX_LINE_CHARS characters) with each variable part replaced by its mask."""
    line = line[:MAX_LINE_CHARS]
    unicode = not line.isascii()
    if '"' in line or "'" in line:
        line = _QUOTED.sub(_quoted, line)
    if "://" in line or "@" in line:
        line = _LINKS.sub(_LINKS_MASK, line)
    if ":" in line and ("::" in line or _DIGIT_COLON_DIGIT.search(line)):
        line = _CLOCK[unicode].sub(_CLOCK_MASK, line)
    if "." in line and _HOST_HINT[unicode].search(line):
        line = _HOST[unicode].sub("<HOST>", line)
    return _NUMERIC[unicode].sub(_NUMERIC_MASK, line)


def tokens(masked: str) -> list[str]:
    """A masked line's tokens (whitespace separated), at most MAX_TOKENS: the rest becomes one `<*>`."""
    parts = masked.split()
    if len(parts) > MAX_TOKENS:
        parts = parts[: MAX_TOKENS - 1] + [WILDCARD]
    return parts


@dataclass(slots=True)
class Cluster:
    """A template and where it sits in the tree (`path`: the tokens that routed its first line)."""

    id: int
    tokens: list[str]
    path: tuple[str, ...]
    example: str
    catch_all: bool = False
    size: int = 0  # lines merged while this process ran (not persisted; counts live with the store)

    @property
    def template(self) -> str:
        return " ".join(self.tokens)


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    clusters: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DrainSettings:
    """`similarity`: the share of a template's constant tokens a line must equal to join it. `depth`: the
    leading tokens that route a line. The bounds: templates, children of a node, templates in a leaf, and the
    cache of masked lines already assigned."""

    similarity: float = 0.5
    depth: int = 2
    max_clusters: int = 5_000
    max_children: int = 100
    max_leaf_clusters: int = 64
    cache_size: int = 50_000


def _route_key(token: str) -> str:
    """The child a token leads to: itself, or `<*>` when it still holds a digit (a variable the masks missed)."""
    return WILDCARD if any(char.isdigit() for char in token) else token


class Drain:
    """The clustering state: clusters by id, the prefix tree, and a cache of masked lines.

    Not thread-safe: one writer at a time (callers that share it across threads hold a lock).
    `dirty` holds the ids of clusters created or changed since the caller last took them (to persist).
    """

    def __init__(self, settings: DrainSettings | None = None):
        self.settings = settings or DrainSettings()
        self.clusters: dict[int, Cluster] = {}
        self.dirty: set[int] = set()
        self._root: dict[int, _Node] = {}
        self._catch_all: dict[int, int] = {}  # token count -> cluster id
        self._cache: dict[str, int] = {}
        self._next_id = 1
        self.overflow = 0  # lines sent to a catch-all because a bound was reached

    # ------------------------------------------------------------------------------------------- state

    def restore(self, clusters: Iterable[Cluster]) -> None:
        """Rebuilds the tree from stored clusters (on open): each goes back where its first line put it."""
        for cluster in clusters:
            self.clusters[cluster.id] = cluster
            self._next_id = max(self._next_id, cluster.id + 1)
            if cluster.catch_all:
                self._catch_all[len(cluster.tokens)] = cluster.id
            else:
                leaf, _ = self._grow(cluster.path, len(cluster.tokens), force=True)
                leaf.clusters.append(cluster.id)

    def take_dirty(self) -> list[Cluster]:
        """The clusters created or changed since the last call."""
        changed = [self.clusters[cluster_id] for cluster_id in sorted(self.dirty)]
        self.dirty = set()
        return changed

    # ------------------------------------------------------------------------------------------- lines

    def add(self, line: str) -> Cluster:
        """Assigns a line to its cluster (creating or generalizing one); returns it."""
        masked = mask(line)
        cached = self._cache.get(masked)
        if cached is not None:
            cluster = self.clusters[cached]
            cluster.size += 1
            return cluster
        cluster = self._assign(line, tokens(masked))
        cluster.size += 1
        if len(self._cache) >= self.settings.cache_size:
            self._cache.clear()
        self._cache[masked] = cluster.id
        return cluster

    def match(self, line: str) -> Cluster | None:
        """The cluster a line belongs to without changing anything: a template it equals at every constant
        position, in its leaf or its length's catch-all; None when there is none."""
        masked = mask(line)
        cached = self._cache.get(masked)
        if cached is not None:
            return self.clusters[cached]
        parts = tokens(masked)
        leaf = self._leaf(self._path(parts), len(parts))
        candidates = list(leaf.clusters) if leaf else []
        if len(parts) in self._catch_all:
            candidates.append(self._catch_all[len(parts)])
        for cluster_id in candidates:
            cluster = self.clusters[cluster_id]
            if all(t == WILDCARD or t == p for t, p in zip(cluster.tokens, parts)):
                return cluster
        return None

    # ------------------------------------------------------------------------------------------- inside

    def _path(self, parts: list[str]) -> tuple[str, ...]:
        return tuple(_route_key(token) for token in parts[: self.settings.depth])

    def _leaf(self, path: tuple[str, ...], length: int) -> _Node | None:
        """The leaf a path leads to without adding anything (a missing key follows the `<*>` child)."""
        node = self._root.get(length)
        for key in path:
            if node is None:
                return None
            node = node.children.get(key) or node.children.get(WILDCARD)
        return node

    def _grow(self, path: tuple[str, ...], length: int, *, force: bool = False) -> tuple[_Node, tuple[str, ...]]:
        """The leaf for a path, adding missing nodes while a node has room (past max_children the `<*>` child
        takes the rest; `force` always adds: restoring what existed), and the keys actually followed."""
        node = self._root.get(length) or self._root.setdefault(length, _Node())
        followed = []
        for key in path:
            child = node.children.get(key)
            if child is None:
                if force or key == WILDCARD or len(node.children) < self.settings.max_children - 1:
                    child = node.children[key] = _Node()
                else:
                    key = WILDCARD
                    child = node.children.get(WILDCARD) or node.children.setdefault(WILDCARD, _Node())
            followed.append(key)
            node = child
        return node, tuple(followed)

    def _assign(self, line: str, parts: list[str]) -> Cluster:
        leaf, path = self._grow(self._path(parts), len(parts))
        best, best_score = None, (-1.0, -1)
        for cluster_id in leaf.clusters:
            cluster = self.clusters[cluster_id]
            score = _similarity(cluster.tokens, parts)
            if score > best_score:
                best, best_score = cluster, score
        if best is not None and best_score[0] >= self.settings.similarity:
            self._merge(best, parts)
            return best
        if len(self.clusters) >= self.settings.max_clusters or len(leaf.clusters) >= self.settings.max_leaf_clusters:
            self.overflow += 1
            return self._to_catch_all(line, parts)
        cluster = Cluster(self._next_id, list(parts), path, line[:MAX_LINE_CHARS])
        self._next_id += 1
        self.clusters[cluster.id] = cluster
        leaf.clusters.append(cluster.id)
        self.dirty.add(cluster.id)
        return cluster

    def _merge(self, cluster: Cluster, parts: list[str]) -> None:
        changed = False
        for index, (token, part) in enumerate(zip(cluster.tokens, parts)):
            if token != part and token != WILDCARD:
                cluster.tokens[index] = WILDCARD
                changed = True
        if changed:
            self.dirty.add(cluster.id)

    def _to_catch_all(self, line: str, parts: list[str]) -> Cluster:
        cluster_id = self._catch_all.get(len(parts))
        if cluster_id is None:
            cluster = Cluster(self._next_id, list(parts), (), line[:MAX_LINE_CHARS], catch_all=True)
            self._next_id += 1
            self.clusters[cluster.id] = cluster
            self._catch_all[len(parts)] = cluster.id
            self.dirty.add(cluster.id)
            return cluster
        cluster = self.clusters[cluster_id]
        self._merge(cluster, parts)
        return cluster


def _similarity(template: list[str], parts: list[str]) -> tuple[float, int]:
    """Drain's similarity: the share of positions where the template's token equals the line's (a wildcard is
    not an equal token), then its number of wildcards: between two equally similar templates the more general
    one wins, as in Drain, so lines gather in fewer templates."""
    equal = wildcards = 0
    for token, part in zip(template, parts):
        if token == WILDCARD:
            wildcards += 1
        elif token == part:
            equal += 1
    return equal / len(parts) if parts else 1.0, wildcards
