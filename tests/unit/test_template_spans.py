"""The one `${...}` scanner (domain/template_spans.py) that notification and trait templates share."""

from __future__ import annotations

import pytest

from domain.template_spans import NestedExpression, expression_spans


def test_expressions_are_found_with_braces_balanced_outside_string_literals() -> None:
    text = 'a ${x} b ${ {"k": "}"}.k } c'
    spans = expression_spans(text)
    assert [inner for _, _, inner in spans.found] == ["x", ' {"k": "}"}.k ']
    assert [text[start:end] for start, end, _ in spans.found] == ["${x}", '${ {"k": "}"}.k }']
    assert spans.unclosed_at == -1


def test_an_unclosed_expression_is_reported_where_it_starts_not_decided() -> None:
    spans = expression_spans("ok ${a} then ${b + {")
    assert [inner for _, _, inner in spans.found] == ["a"]
    assert spans.unclosed_at == len("ok ${a} then ")


def test_an_expression_inside_another_is_an_error_naming_it() -> None:
    with pytest.raises(NestedExpression) as raised:
        expression_spans("x ${a + ${b}}")
    assert raised.value.snippet == "${a + ${"


def test_an_escaped_quote_does_not_end_a_string_literal() -> None:
    spans = expression_spans(r'${"a\"}" + b}')
    assert [inner for _, _, inner in spans.found] == [r'"a\"}" + b']
