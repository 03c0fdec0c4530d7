"""Output types: one module each, registered by ``@register`` in ``base``. Every module of this package is
imported here, so adding an output type is adding one file."""

from __future__ import annotations

import importlib
import pkgutil

from harness.errors import HarnessError
from harness.outputs.base import OUTPUTS, BaseRecord, Instance, LmEvalRecord, Output, Record, parse_records, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def output_type(name: str) -> Output:
    """The registered output type called ``name``."""
    try:
        return OUTPUTS[name]
    except KeyError:
        raise HarnessError(f"unknown output type {name!r} (known: {', '.join(sorted(OUTPUTS))})",
                           where="output") from None


__all__ = ["OUTPUTS", "BaseRecord", "Instance", "LmEvalRecord", "Output", "Record", "output_type", "parse_records",
           "register"]
