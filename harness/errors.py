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


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """The field names a pydantic model accepts at ``loc`` (through lists, unions and nested models)."""
    candidates = [model]
    for part in loc:
        nxt: list[Any] = []
        for c in candidates:
            origin = typing.get_origin(c)
            if origin is not None:  # list[X], Optional[X], Union[X, Y]: look inside
                nxt.extend(a for a in typing.get_args(c) if isinstance(part, int) or hasattr(a, "model_fields")
                           or typing.get_origin(a) is not None)
                if isinstance(part, int):
                    continue
            fields = getattr(c, "model_fields", None)
            if fields and part in fields:
                nxt.append(fields[part].annotation)
        candidates = [a for c in nxt for a in ([c] if hasattr(c, "model_fields") else typing.get_args(c) or [c])]
    return sorted({f for c in candidates for f in getattr(c, "model_fields", {})})


def pydantic_error(exc: Exception, source: object, model: Optional[Any] = None) -> HarnessError:
    """Turn the first error of a pydantic ValidationError into a HarnessError naming the field; an unknown
    field of ``model`` gets the closest known names as a suggestion."""
    first = exc.errors()[0]  # type: ignore[attr-defined]
    # pydantic puts the union member it tried into the path ("suite.list[ModelSpec].0"): leave it out
    loc = tuple(p for p in first.get("loc", ()) if isinstance(p, int) or not ("[" in p or p[:1].isupper()))
    msg = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        msg = "unknown field"
        if model is not None and loc:
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(model, loc[:-1]), n=2)
            if close:
                msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return HarnessError(msg, source=source, where=".".join(str(p) for p in loc) or None)
