"""One exception type for bad input, so the CLI can print one line and exit non-zero."""

from __future__ import annotations

import difflib
import typing
from typing import Any, Optional


class HarnessError(Exception):
    """User-facing error. Renders as ``SOURCE: WHERE: MESSAGE`` on one line.

    ``source`` is a file (or model id), ``where`` a field path or a row number.
    """

    def __init__(self, message: str, *, source: object = None, where: object = None):
        self.message = " ".join(str(message).split())  # always one line
        self.source = source
        self.where = where
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [str(p) for p in (self.source, self.where) if p not in (None, "")]
        return ": ".join(parts + [self.message])


def _models_in(annotation: Any) -> list[Any]:
    """The pydantic models a field's type can hold, through list[...], Optional[...] and Union[...]."""
    if hasattr(annotation, "model_fields"):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """The field names accepted at ``loc`` (a pydantic error location) inside ``model``."""
    models = [model]
    for part in loc:
        if not isinstance(part, int):  # an int is a list index: the same models
            models = [m for parent in models if part in parent.model_fields
                      for m in _models_in(parent.model_fields[part].annotation)]
    return sorted({f for m in models for f in m.model_fields})


def _union_tag(part: str) -> bool:
    """``list[ModelSpec]``, ``constrained-int``, ``int``: a union member's tag, never a field name."""
    return "[" in part or "-" in part or part[:1].isupper() or part in ("int", "str", "float", "bool", "none")


def pydantic_error(exc: Exception, source: object, model: Optional[Any] = None) -> HarnessError:
    """Turn the first error of a pydantic ValidationError into a HarnessError naming the field; an unknown
    field of ``model`` gets the closest known names as a suggestion."""
    errors = exc.errors()  # type: ignore[attr-defined]
    # an unknown key first: a typo ("sutie") also makes its field missing, and the typo is what to fix
    first = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
    # pydantic puts the union member it tried into the path ("suite.list[ModelSpec].0"): leave it out
    loc = tuple(p for p in first.get("loc", ()) if isinstance(p, int) or not _union_tag(p))
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")  # a validator's own words
    if first.get("type") == "extra_forbidden":
        msg = "unknown field"
        if model is not None and loc:
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(model, loc[:-1]), n=2)
            if close:
                msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return HarnessError(msg, source=source, where=".".join(str(p) for p in loc) or None)
