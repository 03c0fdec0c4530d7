"""The template sandbox: ordinary templates render exactly as in Jinja2's own sandbox; the time limit holds in
any thread and in loops that call nothing; sizes count through containers."""

from __future__ import annotations

import threading
import time

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness.tasks import sandbox
from harness.tasks.sandbox import LimitedEnvironment, TemplateLimit, bounded_join, limited, size

DOC = {"q": "What is 2 + 2?", "opts": ["3", "4", "five"], "gold": 1, "n": 12345678901234567890,
       "ctx": {"title": "Sums", "sents": ["a b", "c d"]}, "text": "x" * 200_000}
ORDINARY = [
    "Question: {{q}}\nAnswer:", "{{ opts|join(', ') }}", "{% for o in opts %}{{ loop.index }}. {{ o }}\n{% endfor %}",
    "{{ q|upper }} {{ q|lower|title }}", "{{ '%s (%d)' % (q, gold) }}", "{{ '{}: {:>5}'.format(q, gold) }}",
    "{{ opts[gold] ~ '!' }}", "{{ (opts * 3)|length }}", "{{ 2 ** 64 }} {{ n * n }}", "{{ ctx.title }}: {{ ctx.sents|join(' ') }}",
    "{{ q.replace('2', 'two') }}", "{{ q.split()|reverse|join(' ') }}", "{{ text|length }} {{ text[:10] }}",
    "{{ (text ~ text)|length }}", "{{ q|center(30) }}|{{ q.ljust(20) }}|", "{{ q|wordwrap(5) }}", "{{ text|truncate(20) }}",
    "{% set ns = namespace(s='') %}{% for o in opts %}{% set ns.s = ns.s ~ o %}{% endfor %}{{ ns.s }}",
    "{{ opts|map('upper')|list }}", "{{ range(3)|list }} {{ dict(a=1) }}", "{{ '%-8s|' % q }}", "{{ q|indent(4, true) }}",
]


@pytest.mark.parametrize("template", ORDINARY)
def test_ordinary_templates_render_as_in_jinja(template):
    plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    mine = LimitedEnvironment().from_string(template)
    assert limited(lambda: bounded_join(mine.generate(**DOC))) == plain.from_string(template).render(**DOC)


def test_size_counts_through_containers_and_stops_early():
    big = "x" * 1000
    assert size([big] * 3) == 3 + 3000 and size({"a": [1, 2]}) == 1 + 1 + 2 + 2
    t0 = time.perf_counter()
    assert size([big] * 10**6, budget=10_000) > 10_000 and time.perf_counter() - t0 < 1


def test_time_limit_off_the_main_thread(monkeypatch):
    """No signals: the limit holds in any thread (a cluster worker renders off the main thread)."""
    monkeypatch.setattr(sandbox, "SECONDS", 0.5)
    tmpl = LimitedEnvironment().from_string("{% for i in range(100000) %}{% for j in range(100000) %}{{ j|string }}"
                                            "{% endfor %}{% endfor %}")
    caught: list[BaseException] = []

    def work() -> None:
        try:
            limited(lambda: bounded_join(tmpl.generate()))
        except BaseException as exc:  # noqa: B036 - the test inspects what was raised
            caught.append(exc)

    t0 = time.perf_counter()
    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and time.perf_counter() - t0 < 10
    assert isinstance(caught[0], TemplateLimit) and "longer than 0.5 s" in str(caught[0])


def test_loops_without_calls_are_timed(monkeypatch):
    """Ten nested loops over a literal list: 10^10 iterations with no call or operator to check the clock."""
    monkeypatch.setattr(sandbox, "SECONDS", 0.5)
    nested = "".join(f"{{% for x{i} in [0,0,0,0,0,0,0,0,0,0] %}}" for i in range(10)) + "{% endfor %}" * 10
    tmpl = LimitedEnvironment().from_string(nested)
    t0 = time.perf_counter()
    with pytest.raises(TemplateLimit, match="longer than 0.5 s"):
        limited(lambda: bounded_join(tmpl.generate()))
    assert time.perf_counter() - t0 < 5
