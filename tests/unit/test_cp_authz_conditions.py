"""The CEL conditions the embedded policy can hold (access/conditions.py): environment lists in any spelling
CEL allows, everything else refused with a reason rather than ignored."""

from __future__ import annotations

import pytest

from access.conditions import MAX_EXPRESSION_CHARS, ConditionError, Environment, environments

DEV = Environment("", "dev")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('resource.environment == "dev"', {DEV}),
        ("resource.environment == 'dev'", {DEV}),
        ('"dev" == resource.environment', {DEV}),
        ('(resource.environment == "dev")', {DEV}),
        ('resource.environment in ["dev", "acme/prod"]', {DEV, Environment("acme", "prod")}),
        (
            'resource.environment == "dev" || (resource.environment in ["qa"] || "ci" == resource.environment)',
            {DEV, Environment("", "qa"), Environment("", "ci")},
        ),
        ('resource.environment in ["dev", "dev"]', {DEV}),
    ],
)
def test_environment_conditions_compile(expression, expected):
    assert environments(expression) == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ('resource.environment != "prod"', "not `!=`"),
        ('resource.environment == "a" && resource.environment == "b"', "not `&&`"),
        ('!(resource.environment == "a")', "not a unary expression"),
        ('resource.environment.startsWith("d")', "not a method call"),
        ("size(resource.environment) > 1", "not `>`"),
        ('resource.component == "cart"', "`==` compares resource.environment"),
        ('environment == "dev"', "`==` compares resource.environment"),
        ("resource.environment == 1", "expected a string literal, not 1"),
        ("resource.environment in []", "an empty list allows no environment"),
        ("resource.environment in envs", "needs a list literal"),
        ('resource.environment in ["dev", 2]', "expected a string literal, not 2"),
        ('resource.environment == r"dev"', "plain quoted string"),
        ('resource.environment == "a|b"', "is not an environment name"),
        ('resource.environment == "a b"', "is not an environment name"),
        ('resource.environment == "a/b/c"', "is not an environment name"),
        ('resource.environment == "*"', "is not an environment name"),
        ('resource.environment == "d\\x65v"', "escapes are not supported"),
        ("true", "not a bare literal"),
        ("resource.environment ==", "not valid CEL"),
        ("x" * (MAX_EXPRESSION_CHARS + 1), "longer than"),
    ],
)
def test_other_expressions_are_refused_with_a_reason(expression, reason):
    with pytest.raises(ConditionError) as caught:
        environments(expression)
    assert reason in str(caught.value)


def test_a_list_is_bounded():
    names = ", ".join(f'"e{i}"' for i in range(257))
    with pytest.raises(ConditionError, match="more than 256"):
        environments(f"resource.environment in [{names}]")
