"""One exception type for bad input, so the CLI can print one line and exit non-zero."""

from __future__ import annotations


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


def pydantic_error(exc: Exception, source: object) -> HarnessError:
    """Turn the first error of a pydantic ValidationError into a HarnessError naming the field."""
    first = exc.errors()[0]  # type: ignore[attr-defined]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    msg = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        msg = "unknown field"
    return HarnessError(msg, source=source, where=loc or None)
