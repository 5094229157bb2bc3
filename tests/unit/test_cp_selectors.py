"""Kubernetes label selectors: each operator, AND over commas, and a bad selector naming `labelSelector`."""

from __future__ import annotations

import pytest

from controlplane.errors import Invalid
from controlplane.selectors import parse

LABELS = {"app": "cart", "tier": "web", "openchoreo.dev/environment": "dev"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=cart", True),
        ("app==cart", True),
        ("app=shop", False),
        ("app!=shop", True),
        ("app!=cart", False),
        ("missing!=x", True),  # != matches an object without the key, as in Kubernetes
        ("app in (cart,shop)", True),
        ("app in (shop, pay)", False),
        ("app notin (shop,pay)", True),
        ("app notin (cart)", False),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("openchoreo.dev/environment=dev", True),
        ("app=cart,tier=web", True),
        ("app=cart, tier=db", False),
        ("app in (cart),!legacy,tier", True),
        ("tier=", False),  # the empty value: only an object whose label is "" matches
    ],
)
def test_matches(selector: str, expected: bool) -> None:
    assert parse(selector).matches(LABELS) is expected


def test_empty_value_matches_an_empty_label() -> None:
    assert parse("tier=").matches({"tier": ""})
    assert not parse("tier=").matches({})


def test_no_labels_at_all() -> None:
    assert parse("!app").matches(None)
    assert not parse("app").matches(None)


def test_requirements_are_parsed_in_order() -> None:
    parsed = parse(" app in ( a , b ) ,  tier!=web,!legacy,zone")
    assert [(r.key, r.op, sorted(r.values)) for r in parsed.requirements] == [
        ("app", "in", ["a", "b"]),
        ("tier", "notin", ["web"]),
        ("legacy", "!exists", []),
        ("zone", "exists", []),
    ]


@pytest.mark.parametrize(
    "selector",
    [
        "app=cart,",
        ",app=cart",
        "app in (a,,b)",
        "app in ()",
        "app in (a",
        "app=cart tier=web",
        "app=c@rt",
        "-app=cart",
        "app===cart",
        "a" * 5000,
    ],
)
def test_bad_selector_is_invalid_naming_label_selector(selector: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse(selector)
    assert caught.value.status == 400
    assert [field for field, _ in caught.value.details] == ["labelSelector"]
