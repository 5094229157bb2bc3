"""The one error a renderer raises: the inputs cannot become objects (a bad trait expression, a missing secret).

It is data, not a crash: the reconciler catches it and writes it into the binding's or channel's condition, so the
message names what to fix (the trait instance and the field inside its template, or the input field) and never
carries a secret value.
"""

from __future__ import annotations


class RenderError(ValueError):
    """`trait` is the trait instance name (empty when no trait is involved); `field` is the dotted path of the
    template field or input field at fault."""

    def __init__(self, message: str, *, trait: str = "", field: str = "") -> None:
        where = ", ".join(
            part for part in (f"trait {trait}" if trait else "", f"field {field}" if field else "") if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.trait = trait
        self.field = field
        self.reason = message
