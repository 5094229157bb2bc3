"""The CEL conditions of OpenChoreo's role bindings that the embedded Casbin model can hold: environment lists.

An AuthzRoleBinding's roleMapping may narrow some of its actions with a CEL expression over the request's
attributes (`spec.roleMappings[i].conditions[j].expression`). The Casbin model of access/casbin_pdp.py has one
attribute, the environment, matched against a `|`-joined list of names. So the expressions that compile are the
ones that say "the environment is one of these", in any combination of:

    resource.environment == "dev"            "dev" == resource.environment
    resource.environment in ["dev", "acme/prod"]
    <one of those> || <another>             (parentheses allowed)

Anything else (`&&`, `!=`, another attribute, a function call, a non-string literal) raises ConditionError with
what was not understood, so the API refuses the binding (400) instead of storing a condition that would be
silently ignored (which could widen access). The expression is parsed by cel-python, so a syntax error is
reported as CEL reports it.

A value is a bare environment name (`dev`, any namespace) or namespace-prefixed (`acme/dev`, as OpenChoreo's
EvaluateRequest carries it): `Environment(namespace, name)` keeps the two apart and the compiler decides where
each one applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import celpy
from lark import Token, Tree

#: An environment name as a policy line can hold it: no `|` (the list separator), `*`, whitespace or `/`.
_NAME = re.compile(r"^[^|*\s/]+$")
#: Bounds on what one expression may say: a condition is a short list, not a program.
MAX_EXPRESSION_CHARS = 4096
MAX_VALUES = 256

#: Grammar nodes that only wrap a single child on the way down to what matters.
_WRAPPERS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary", "member", "primary"}
)

_ENVIRONMENT = celpy.Environment()


class ConditionError(ValueError):
    """The expression is not an environment condition this model can hold; the message says why."""


@dataclass(frozen=True, order=True)
class Environment:
    """One environment a condition names: `namespace` is "" for a bare name (any namespace)."""

    namespace: str
    name: str


def environments(expression: str) -> frozenset[Environment]:
    """The environments an expression allows (see the module docstring); ConditionError otherwise."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ConditionError(f"longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = _ENVIRONMENT.compile(expression)
    except celpy.CELParseError as exc:
        raise ConditionError(f"not valid CEL: {str(exc).strip().splitlines()[0]}") from None
    found = _disjunction(tree)
    if len(found) > MAX_VALUES:
        raise ConditionError(f"names more than {MAX_VALUES} environments")
    return frozenset(found)


def _unwrap(node: Tree[Token] | Token) -> Tree[Token] | Token:
    """Strips the single-child wrappers and parentheses the grammar puts around every term."""
    while isinstance(node, Tree):
        if node.data in _WRAPPERS and len(node.children) == 1:
            node = node.children[0]
        elif node.data == "paren_expr" and len(node.children) == 1:
            node = node.children[0]
        else:
            break
    return node


def _disjunction(node: Tree[Token] | Token) -> set[Environment]:
    # A conditionalor of two children is `a || b`; the grammar nests longer chains on the left.
    if isinstance(node, Tree) and node.data == "conditionalor" and len(node.children) == 2:
        return _disjunction(node.children[0]) | _disjunction(node.children[1])
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "conditionalor" and len(node.children) == 2:
        return _disjunction(node)
    operator, left, right = _relation(node)
    if operator == "relation_eq":
        if _is_environment(left):
            return {_value(right)}
        if _is_environment(right):
            return {_value(left)}
        raise ConditionError("`==` compares resource.environment with a string")
    if operator == "relation_in":
        if not _is_environment(left):
            raise ConditionError("`in` tests resource.environment against a list of strings")
        return _list(right)
    raise ConditionError(
        f'only `resource.environment == "<env>"`, `resource.environment in [...]` and `||` of them are '
        f"supported, not {_describe(node)}"
    )


def _relation(node: Tree[Token] | Token) -> tuple[str, Tree[Token] | Token, Tree[Token] | Token]:
    """(operator, left, right) of a binary relation: the grammar writes `a == b` as
    relation[relation_eq[a], b]. ("", node, node) for anything else."""
    if isinstance(node, Tree) and node.data == "relation" and len(node.children) == 2:
        head = node.children[0]
        if isinstance(head, Tree) and str(head.data).startswith("relation_") and len(head.children) == 1:
            return str(head.data), _unwrap(head.children[0]), _unwrap(node.children[1])
    return "", node, node


def _is_environment(node: Tree[Token] | Token) -> bool:
    """`resource.environment`: a member_dot of the identifier `resource` and the field `environment`."""
    if not (isinstance(node, Tree) and node.data == "member_dot" and len(node.children) == 2):
        return False
    base, field = _unwrap(node.children[0]), node.children[1]
    return (
        isinstance(field, Token)
        and str(field) == "environment"
        and isinstance(base, Tree)
        and base.data == "ident"
        and len(base.children) == 1
        and str(base.children[0]) == "resource"
    )


def _list(node: Tree[Token] | Token) -> set[Environment]:
    if not (isinstance(node, Tree) and node.data == "list_lit"):
        raise ConditionError("`in` needs a list literal of strings")
    if not node.children:
        raise ConditionError("an empty list allows no environment")
    values: set[Environment] = set()
    for exprlist in node.children:
        if not isinstance(exprlist, Tree):
            raise ConditionError("`in` needs a list literal of strings")
        for item in exprlist.children:
            values.add(_value(_unwrap(item)))
    return values


def _value(node: Tree[Token] | Token) -> Environment:
    """A plain string literal (single or double quotes, no escapes, not raw or triple-quoted) naming one
    environment, bare or `<namespace>/<name>`."""
    if not (isinstance(node, Tree) and node.data == "literal" and len(node.children) == 1):
        raise ConditionError(f"expected a string literal, not {_describe(node)}")
    token = node.children[0]
    text = str(token)
    if not (isinstance(token, Token) and token.type == "STRING_LIT"):
        raise ConditionError(f"expected a string literal, not {text}")
    if len(text) < 2 or text[0] != text[-1] or text[0] not in "\"'" or text.startswith(('"""', "'''")):
        raise ConditionError(f"expected a plain quoted string, not {text}")
    value = text[1:-1]
    if "\\" in value:
        raise ConditionError(f"escapes are not supported in environment names: {text}")
    namespace, _, name = value.rpartition("/")
    if not _NAME.match(name) or (namespace and not _NAME.match(namespace)):
        raise ConditionError(f"{text} is not an environment name (`<env>` or `<namespace>/<env>`)")
    return Environment(namespace, name)


def _describe(node: Tree[Token] | Token) -> str:
    if isinstance(node, Token):
        return repr(str(node))
    label = _relation(node)[0] or str(node.data)
    names = {
        "conditionaland": "`&&`",
        "relation_ne": "`!=`",
        "relation_lt": "`<`",
        "relation_le": "`<=`",
        "relation_gt": "`>`",
        "relation_ge": "`>=`",
        "unary_not": "`!`",
        "member_dot_arg": "a method call",
        "ident_arg": "a function call",
        "ident": "an identifier",
        "member_dot": "a field other than resource.environment",
        "literal": "a bare literal",
    }
    return names.get(label, f"a {label} expression")
