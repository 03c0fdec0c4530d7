"""The template sandbox: Jinja2's immutable sandbox with limits on time, on the size of every value a template
builds, and on the size of what it renders, so a task file can neither run forever nor allocate without bound
(``{{ 9**999999999 }}``, ``{{ q * 10**10 }}``, ``'{0:>3000000000}'.format(q)``). Every loop iteration, call,
filter and growing operator checks the clock, so the time limit holds in any thread without signals; operations
that could build a huge value in one step are refused before they run. Templates are deterministic: the
``random`` filter and the ``lipsum`` global are removed."""

from __future__ import annotations

import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any, TypeVar

from jinja2 import StrictUndefined, nodes, pass_environment
from jinja2.compiler import CodeGenerator
from jinja2.filters import make_attrgetter
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_CHARS = 10_000_000  # characters (or items) in any value a template builds, and in one rendered field
MAX_INT_BITS = 100_000  # ~30,000 decimal digits
SECONDS = 5.0  # wall-clock limit for rendering one field of one row

T = TypeVar("T")
_LOOP_FILTER = "_loop_items"  # the filter every for-loop's iterable goes through
_state = threading.local()


class TemplateLimit(Exception):
    """A template went past a limit; the message says which."""


def _tick() -> None:
    deadline = getattr(_state, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateLimit(f"rendering took longer than {SECONDS:g} s")


def size(value: Any, budget: int = MAX_CHARS) -> int:
    """Characters and items in ``value``, counted through containers (a list holding one long string a million
    times counts a million times); stops counting once past ``budget``."""
    total, stack = 0, [value]
    while stack and total <= budget:
        v = stack.pop()
        if isinstance(v, (str, bytes)):
            total += len(v)
        elif isinstance(v, dict):
            total += len(v)
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            total += len(v)
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            total += v.bit_length() // 64 + 1
        else:
            total += 1
    return total


def _refuse_over(estimate: float, what: str) -> None:
    if estimate > MAX_CHARS:
        raise TemplateLimit(f"{what} would build a value of {estimate:.3g} characters (limit {MAX_CHARS:,})")


def _checked(value: T, what: str = "a value") -> T:
    _refuse_over(size(value), what)
    return value


_PRINTF = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_printf(fmt: str) -> None:
    """``'%0999999999d' % x``: widths and precisions in printf formats are bounded; ``*`` widths are refused."""
    for m in _PRINTF.finditer(fmt):
        for part in m.groups():
            if part == "*":
                raise TemplateLimit("'*' widths in % formats are not allowed in templates")
            if part and int(part) > MAX_CHARS:
                raise TemplateLimit(f"format width {int(part):,} is over the limit {MAX_CHARS:,}")


def _check_format(fmt: str) -> None:
    """``'{0:>3000000000}'.format(q)``: widths in ``str.format`` specs are bounded; nested fields refused."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        raise TemplateLimit(f"bad format string: {exc}") from None
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise TemplateLimit("nested fields in a format spec are not allowed in templates")
        for digits in re.findall(r"\d+", spec or ""):
            if int(digits) > MAX_CHARS:
                raise TemplateLimit(f"format width {int(digits):,} is over the limit {MAX_CHARS:,}")


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _width(value: Any) -> int:
    return value if isinstance(value, int) else len(str(value))


# Estimated output size of the filters and str methods that can amplify their input, from their arguments.
_ESTIMATES: dict[str, Callable[[tuple, dict], float]] = {
    "center": lambda a, k: max(len(str(a[0])), _width(_arg(a, k, 1, "width", 80))),
    "ljust": lambda a, k: max(len(str(a[0])), _width(_arg(a, k, 1, "width", 0))),
    "rjust": lambda a, k: max(len(str(a[0])), _width(_arg(a, k, 1, "width", 0))),
    "zfill": lambda a, k: max(len(str(a[0])), _width(_arg(a, k, 1, "width", 0))),
    "expandtabs": lambda a, k: len(str(a[0])) * max(1, _width(_arg(a, k, 1, "tabsize", 8))),
    "indent": lambda a, k: len(str(a[0])) + (str(a[0]).count("\n") + 1) * _width(_arg(a, k, 1, "width", 4)),
    "wordwrap": lambda a, k: len(str(a[0])) * (1 + len(str(_arg(a, k, 3, "wrapstring", "") or "\n"))),
    "replace": lambda a, k: len(str(a[0])) + (str(a[0]).count(str(_arg(a, k, 1, "old", ""))) + 1)
    * len(str(_arg(a, k, 2, "new", ""))),
    "batch": lambda a, k: _width(_arg(a, k, 1, "linecount", 1)),
    "slice": lambda a, k: _width(_arg(a, k, 1, "slices", 1)),
    "truncate": lambda a, k: _width(_arg(a, k, 1, "length", 255)),
}


def _pre_check(name: str, args: tuple, kwargs: dict, method: bool = False) -> tuple:
    """Refuse a call whose result would be too big before it is built. ``args`` start with the value (the
    string a ``method`` is called on). Returns the args, with the items of a ``join`` materialized."""
    _tick()
    if name == "join" and len(args) > (1 if method else 0):
        at = 1 if method else 0  # "sep".join(items) vs items|join(sep)
        items = args[at] if isinstance(args[at], (str, list, tuple)) else list(args[at])
        sep = args[0] if method else _arg(args, kwargs, 1, "d", "")
        _refuse_over(size(items) + len(items) * size(sep), "join")
        return (*args[:at], items, *args[at + 1:])
    if name == "format" and args and isinstance(args[0], str):
        _check_printf(args[0])
    estimate = _ESTIMATES.get(name)
    if estimate is not None and args:
        try:
            _refuse_over(estimate(args, kwargs), name)
        except (TypeError, ValueError, IndexError):
            pass  # bad arguments: the call itself raises the error the user should see
    return args


def _guard(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)  # keeps jinja's pass_context/pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        offset = 1 if getattr(fn, "jinja_pass_arg", None) else 0  # context or environment comes first
        checked = _pre_check(name, args[offset:], kwargs)
        return _checked(fn(*args[:offset], *checked, **kwargs), f"the {name} filter")
    return guarded


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, checking the clock at each (nested literal loops need no call to spin for ever)."""
    for item in items:
        _tick()
        yield item


@pass_environment
def _bounded_sum(environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    """Jinja's ``sum``, one item at a time: the clock is checked at each and a growing list or string is bounded
    (``([[0]]*300000)|sum(start=[])`` would otherwise spend minutes inside one C call)."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    total = start
    for item in iterable:
        _tick()
        if not isinstance(total, (int, float)) or not isinstance(item, (int, float)):
            _refuse_over(size(total) + size(item), "the sum filter")
        total = environment.call_binop(None, "+", total, item)
    return total


class _Generator(CodeGenerator):
    """``a ~ b`` goes through ``environment.concat_checked`` so string building is bounded too."""

    def visit_Concat(self, node: Any, frame: Any) -> None:
        self.write("environment.concat_checked((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox; every operator, call and filter that can grow a value is checked first."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    code_generator_class = _Generator

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
        self.filters = {name: _guard(name, fn) for name, fn in self.filters.items() if name != "random"}
        self.filters[_LOOP_FILTER] = _counted
        self.filters["sum"] = _bounded_sum
        self.globals.pop("lipsum", None)

    def _parse(self, source: str, name: Any, filename: Any) -> nodes.Template:
        """Every for-loop iterates through ``_counted`` (a filter added to the parsed template)."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        return tree

    def concat_checked(self, parts: Iterable[Any]) -> str:
        _tick()
        parts = list(parts)
        _refuse_over(sum(size(p) for p in parts), "'~'")
        return "".join(str(p) for p in parts)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
        if operator == "**" and ints and right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateLimit(f"{left} ** {right} has more than {MAX_INT_BITS:,} bits")
        if operator == "*" and ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"a product with more than {MAX_INT_BITS:,} bits")
        if operator == "*" and not ints:
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    _refuse_over(size(seq) * n, f"repeating a value {n:,} times")
        if operator == "+" and not ints:
            _refuse_over(size(left) + size(right), "'+'")
        if operator == "%" and isinstance(left, str):
            _check_printf(left)
        return _checked(super().call_binop(context, operator, left, right), f"'{operator}'")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # jinja's parameter names
        name = getattr(__obj, "__name__", "")
        if isinstance(getattr(__obj, "__self__", None), str):  # a str method: check its amplifying arguments
            args = _pre_check(name, (__obj.__self__, *args), kwargs, method=True)[1:]
        else:
            _tick()
        return _checked(super().call(__context, __obj, *args, **kwargs), f"calling {name or 'a function'}")

    def wrap_str_format(self, value: Any) -> Any:
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:
            _check_format(value.__self__)
        return wrapper


def bounded_join(chunks: Iterable[str]) -> str:
    """A template's streamed output, refused once past ``MAX_CHARS`` (a loop can emit without end)."""
    out: list[str] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > MAX_CHARS:
            raise TemplateLimit(f"the output is longer than {MAX_CHARS:,} characters")
        out.append(chunk)
    return "".join(out)


def limited(fn: Callable[[], T]) -> T:
    """Run one render under the time limit and check the size of what it returns."""
    _state.deadline = time.monotonic() + SECONDS
    try:
        return _checked(fn(), "the rendered field")
    finally:
        _state.deadline = None
