"""Who a verified token speaks for: OpenChoreo's subject resolution (contract notes §0, "Authentication").

Subject types are tried in priority order; the first whose entitlement claim the token carries wins. Without a
configuration file the order is OpenChoreo's default:

1. `user`, entitled by the `groups` claim (every group is an entitlement value);
2. `service_account`, entitled by the `sub` claim.

`OBSERVER_AUTH_CONFIG_PATH` names a YAML file that replaces that list. Two forms are read.

OpenChoreo's own, as its observability-plane chart renders it into the `observer-auth-config` ConfigMap (key
`auth-config.yaml`, mounted at `/etc/openchoreo`), so the same file serves both observers unchanged:

```yaml
auth:
  subject_types:                # tried by `priority`, lowest first; priorities must differ
    - type: user                # what authorization sees as subject_context.type
      display_name: User
      priority: 1
      auth_mechanisms:
        - type: jwt             # the observer authenticates bearer JWTs: the `jwt` mechanism is the one used
          entitlement:
            claim: groups       # the claim whose values are the entitlements
            display_name: User Group
    - type: service_account
      display_name: Service Account
      priority: 2
      auth_mechanisms:
        - type: jwt
          entitlement: {claim: sub, display_name: Client ID}
```

Other keys of that file (`audit:`, display names) are not ours to act on and are ignored. As upstream
(`subject.ValidateConfig`), a type without `type`, listed twice, sharing a priority with another, or without an
entitlement claim is refused; in addition a type with no `jwt` mechanism is refused, since it could never match.

This implementation's shorter form:

```yaml
subjects:                       # tried top to bottom (or by `priority`, lowest first, when given)
  - type: user
    entitlementClaim: groups
  - type: service_account
    entitlementClaim: sub
```

which also reads a mapping keyed by type instead of a list (`subjects: {user: {priority: 1, ...}}`),
`entitlement_claim`, `entitlement: {claim: groups}`, and `mechanisms: {jwt: {entitlement: {claim: groups}}}`;
other keys are ignored. In either form a claim path may be dotted (`realm_access.roles`) for issuers that nest
groups. Anything the resolver cannot use stops the observer at startup with a message naming the entry.

A claim counts as present when it yields at least one non-empty string: a string is one value, a list gives
its strings. So a token with `groups: []` is not a user with no entitlements, which no policy could ever
grant anything to; it falls through to the next type (normally `service_account` by `sub`). A token that
fits no type is refused with INVALID_CLAIMS "Failed to resolve subject from token".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from access.model import INVALID_CLAIMS, SUBJECT_UNRESOLVED_MESSAGE, AuthenticationFailed, Subject
from access.settings import AuthConfigError


@dataclass(frozen=True, slots=True)
class SubjectType:
    """One way a token can identify a caller: the type's name and the claim that entitles it."""

    type: str
    entitlement_claim: str


DEFAULT_SUBJECT_TYPES = (SubjectType("user", "groups"), SubjectType("service_account", "sub"))


def claim_values(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The non-empty string values of `claim` (dotted for nested objects), in token order, without duplicates."""
    value: Any = claims
    for part in claim.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return ()
        value = value[part]
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(dict.fromkeys(item for item in items if isinstance(item, str) and item))


class SubjectResolver:
    """Maps verified claims to a Subject, trying the configured types in priority order."""

    def __init__(self, types: Sequence[SubjectType] = DEFAULT_SUBJECT_TYPES) -> None:
        if not types:
            raise AuthConfigError("subject resolution needs at least one subject type")
        self.types = tuple(types)

    @classmethod
    def from_file(cls, path: Path | None) -> SubjectResolver:
        """The resolver for OBSERVER_AUTH_CONFIG_PATH; the default types when no path is given."""
        if path is None:
            return cls()
        try:
            document = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise AuthConfigError(f"OBSERVER_AUTH_CONFIG_PATH={path}: cannot read it: {exc}") from None
        except yaml.YAMLError as exc:
            raise AuthConfigError(f"OBSERVER_AUTH_CONFIG_PATH={path}: not valid YAML: {exc}") from None
        try:
            return cls(parse_subject_types(document))
        except AuthConfigError as exc:
            raise AuthConfigError(f"OBSERVER_AUTH_CONFIG_PATH={path}: {exc}") from None

    def resolve(self, claims: Mapping[str, Any], token: str = "") -> Subject:
        """The first subject type whose claim the token carries; INVALID_CLAIMS when none does."""
        for subject_type in self.types:
            values = claim_values(claims, subject_type.entitlement_claim)
            if values:
                return Subject(subject_type.type, subject_type.entitlement_claim, values, token=token)
        raise AuthenticationFailed(
            INVALID_CLAIMS,
            SUBJECT_UNRESOLVED_MESSAGE,
            reason="no subject type matched: " + ", ".join(f"{t.type} needs {t.entitlement_claim}" for t in self.types),
        )


_NO_TYPES = (
    "no subject types: expected OpenChoreo's `auth: {subject_types: [...]}` (the observer-auth-config ConfigMap's "
    "auth-config.yaml) or `subjects: [{type: user, entitlementClaim: groups}, ...]`"
)


def parse_openchoreo_subject_types(entries: Any) -> list[SubjectType]:
    """OpenChoreo's `auth.subject_types` (subject.UserTypeConfig), sorted by priority as upstream does. Each
    entry's claim is the `jwt` mechanism's `entitlement.claim`: that is the only mechanism a bearer token can
    satisfy here."""
    where = "auth.subject_types"
    if not isinstance(entries, list) or not entries:
        raise AuthConfigError(
            f"{where} must be a non-empty list of subject types ({{type, priority, auth_mechanisms}})"
        )
    ranked: list[tuple[int, SubjectType]] = []
    types_seen: set[str] = set()
    priorities: dict[int, str] = {}
    for index, entry in enumerate(entries):
        at = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise AuthConfigError(f"{at} is not a mapping")
        name = entry.get("type")
        if not isinstance(name, str) or not name.strip():
            raise AuthConfigError(f"{at} has no `type` (for example `type: user`)")
        name = name.strip()
        if name in types_seen:
            raise AuthConfigError(f"{at}: subject type {name!r} is listed twice")
        types_seen.add(name)
        priority = entry.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise AuthConfigError(f"{at} ({name}): `priority` must be a whole number (lower is tried first)")
        if priority in priorities:
            raise AuthConfigError(
                f"{at} ({name}): priority {priority} is already used by {priorities[priority]!r}; give each type its own"
            )
        priorities[priority] = name
        ranked.append(
            (priority, SubjectType(name, _jwt_entitlement_claim(entry.get("auth_mechanisms"), f"{at} ({name})")))
        )
    return [subject_type for _, subject_type in sorted(ranked, key=lambda item: item[0])]


def _jwt_entitlement_claim(mechanisms: Any, at: str) -> str:
    """`auth_mechanisms[type=jwt].entitlement.claim`, or AuthConfigError saying what is missing."""
    if not isinstance(mechanisms, list) or not mechanisms:
        raise AuthConfigError(f"{at} has no `auth_mechanisms`: add [{{type: jwt, entitlement: {{claim: <claim>}}}}]")
    kinds = [m.get("type") for m in mechanisms if isinstance(m, Mapping)]
    jwt = next((m for m in mechanisms if isinstance(m, Mapping) and m.get("type") == "jwt"), None)
    if jwt is None:
        raise AuthConfigError(
            f"{at} has no `jwt` auth mechanism (found {kinds}); the observer authenticates bearer JWTs, "
            "so add {type: jwt, entitlement: {claim: <claim>}}"
        )
    entitlement = jwt.get("entitlement")
    claim = entitlement.get("claim") if isinstance(entitlement, Mapping) else None
    if not isinstance(claim, str) or not claim.strip():
        raise AuthConfigError(f"{at}: the jwt mechanism has no `entitlement.claim` (for example `claim: groups`)")
    return claim.strip()


def parse_subject_types(document: Any) -> list[SubjectType]:
    """The subject types of an auth-config document (see the module docstring for the accepted shapes)."""
    if not isinstance(document, Mapping):
        raise AuthConfigError(_NO_TYPES)
    auth = document.get("auth")
    if isinstance(auth, Mapping) and "subject_types" in auth:
        return parse_openchoreo_subject_types(auth["subject_types"])
    entries = document.get("subjects", document.get("subjectTypes"))
    if entries is None:
        raise AuthConfigError(_NO_TYPES)
    if isinstance(entries, Mapping):
        entries = [{"type": name, **(body or {})} for name, body in entries.items()]
    if not isinstance(entries, list) or not entries:
        raise AuthConfigError("`subjects` must be a non-empty list of {type, entitlementClaim}")
    ranked: list[tuple[float, int, SubjectType]] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise AuthConfigError(f"subjects[{position}] is not a mapping")
        name = entry.get("type")
        if not isinstance(name, str) or not name.strip():
            raise AuthConfigError(f"subjects[{position}] has no `type`")
        if name in seen:
            raise AuthConfigError(f"subject type {name!r} is listed twice")
        seen.add(name)
        claim = _entitlement_claim(entry)
        if not claim:
            raise AuthConfigError(f"subject type {name!r} has no entitlement claim (entitlementClaim: <claim>)")
        priority = entry.get("priority", float("inf"))
        if isinstance(priority, bool) or not isinstance(priority, (int, float)):
            raise AuthConfigError(f"subject type {name!r}: priority must be a number")
        ranked.append((priority, position, SubjectType(name.strip(), claim)))
    return [subject_type for _, _, subject_type in sorted(ranked, key=lambda item: (item[0], item[1]))]


def _claim_of(block: Any) -> Any:
    """`entitlementClaim: x`, `entitlement_claim: x`, `claim: x`, `entitlement: x` or `entitlement: {claim: x}`."""
    if not isinstance(block, Mapping):
        return None
    entitlement = block.get("entitlement")
    if isinstance(entitlement, Mapping):
        entitlement = entitlement.get("claim")
    for candidate in (block.get("entitlementClaim"), block.get("entitlement_claim"), block.get("claim"), entitlement):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def _entitlement_claim(entry: Mapping[str, Any]) -> str:
    """The claim name under any of the accepted spellings (on the entry itself or under its `jwt` mechanism),
    or "" when there is none."""
    found = _claim_of(entry)
    mechanisms = entry.get("mechanisms")
    if not found and isinstance(mechanisms, Mapping):
        found = _claim_of(mechanisms.get("jwt"))
    if not found and isinstance(mechanisms, list):
        for mechanism in mechanisms:
            if isinstance(mechanism, Mapping) and mechanism.get("type", "jwt") == "jwt":
                found = found or _claim_of(mechanism)
    return found or ""
