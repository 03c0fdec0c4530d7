"""``harness tasks list | validate | show``: what tasks exist, whether they load, and exactly what the model sees."""

from __future__ import annotations

import argparse
import fnmatch
import json
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from rich.table import Table

from harness.cli.console import add_lm_eval_options, console, out, positive_int, safe
from harness.errors import HarnessError


def cmd_list(args: argparse.Namespace) -> int:
    if args.source == "bigbench":
        return _list_bigbench()
    if args.source == "lm_eval":
        return _list_lm_eval(args.match, args.json, args.trust_task_code)
    from harness.tasks import TaskIndex, load_task_file

    index = TaskIndex()
    table = Table(title="tasks")
    for col in ("name", "group", "output", "file"):
        table.add_column(col)
    for name, e in sorted(index.entries.items()):
        try:
            tasks = {t.name: t for t in load_task_file(e.path)}
            output = safe(tasks[name].spec.output) if name in tasks else "group"
        except HarnessError:
            output = "[red]invalid[/]"
        table.add_row(safe(name), safe(e.group if e.group and e.group != name else ""), output, safe(str(e.path)))
    out.print(table)
    for err in index.broken.values():
        console.print("[red]unreadable[/] " + safe(err), soft_wrap=True)
    return 0


def _list_bigbench() -> int:
    """BIG-bench's JSON tasks from the cached index (no task file is read once it exists)."""
    from harness.tasks.sources import bigbench

    tasks = bigbench.index()
    table = Table(title=safe(f"BIG-bench JSON tasks in {bigbench.root()} (run as bigbench:TASK)"))
    for col in ("task", "subtasks", "examples", "preferred score", "metrics", "keywords"):
        table.add_column(col, overflow="fold")
    for t in tasks:
        if "error" in t:
            table.add_row(safe(t["name"]), "-", "-", "[red]unreadable[/]", "", safe(t["error"]))
            continue
        table.add_row(safe(t["name"]), str(len(t["subtasks"]) or ""), f"{t['examples']:,}",
                      safe(str(t["preferred_score"])), safe(", ".join(t["metrics"])),
                      safe(", ".join(t["keywords"])))
    out.print(table)
    return 0


def _list_lm_eval(match: Optional[str], as_json: bool, trust: bool) -> int:
    """lm-eval's catalogue: how many tasks can run here, the reasons the others cannot, and (``--match``) the
    tasks; with ``--json`` one object per task."""
    from harness.tasks.sources.lm_eval_catalogue import catalogue
    from harness.tasks.sources.lm_eval_index import require_lm_eval, user_folders

    root = require_lm_eval()
    rows = catalogue(trust)
    if as_json:
        for r in rows:
            print(json.dumps(vars(r), ensure_ascii=False))
        return 0
    ok = [r for r in rows if r.status == "ok"]
    where = ", ".join(str(p) for p in (root, *user_folders()))
    out.print(safe(f"{len(rows):,} lm-eval tasks in {where}: {len(ok):,} can run here, {len(rows) - len(ok):,} "
                   "cannot (run as lm_eval:TASK; groups and tags too)"))
    reasons = Counter(r.reason for r in rows if r.reason)
    table = Table(title="why the others cannot")
    table.add_column("tasks", justify="right")
    table.add_column("reason", overflow="fold")
    for reason, n in reasons.most_common(25):
        table.add_row(f"{n:,}", safe(reason))
    if len(reasons) > 25:
        table.add_row(f"{sum(n for _, n in reasons.most_common()[25:]):,}", f"{len(reasons) - 25} other reasons")
    out.print(table)
    if match:
        tasks = Table(title=safe(f"tasks matching {match}"))
        for col in ("task", "output", "status", "file"):
            tasks.add_column(col, overflow="fold")
        for r in rows:
            if fnmatch.fnmatchcase(r.name, match):
                tasks.add_row(safe(r.name), safe(r.output), "ok" if r.status == "ok" else "[red]" + safe(r.reason) + "[/]",
                              safe(r.path))
        out.print(tasks)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.tasks import TaskIndex, load_task_file, prepare

    index = TaskIndex()
    paths = [Path(p) for p in args.paths] or sorted({e.path for e in index.entries.values()} | set(index.broken)
                                                    | {e.clash for e in index.entries.values() if e.clash})
    failed = 0
    for path in paths:
        try:
            for task in load_task_file(path):
                n = len(prepare(task, args.limit).instances)
                out.print(safe(f"ok  {task.name}  ({n} documents)  {path}"))
        except HarnessError as err:
            failed += 1
            console.print("[red]error[/] " + safe(str(err)), soft_wrap=True)
    chosen = {p.resolve() for p in paths}
    for name, e in sorted(index.entries.items()):
        if e.clash is not None and {e.path.resolve(), e.clash.resolve()} & chosen:
            failed += 1
            console.print("[red]error[/] " + safe(f"{e.path}: name: task name {name!r} is also defined in {e.clash}"),
                          soft_wrap=True)
    return 1 if failed else 0


def rendered(task_name: str, inst: Any) -> dict[str, Any]:
    """One document as JSON: the context and the exact strings scored after it (delimiter included)."""
    if inst.contexts is not None:  # multiple input: a context per choice, the same continuation after each
        return {"task": task_name, "doc_id": inst.doc_id, "context": inst.context, "contexts": list(inst.contexts),
                "continuations": inst.continuations, "gold": inst.gold, "target": inst.choices[inst.gold]}
    if inst.choices is not None:
        return {"task": task_name, "doc_id": inst.doc_id, "context": inst.context, "continuations": inst.continuations,
                "gold": inst.gold, "target": inst.choices[inst.gold]}
    if inst.target is not None:
        return {"task": task_name, "doc_id": inst.doc_id, "context": inst.context,
                "continuations": [inst.delimiter + inst.target], "gold": 0, "target": inst.target}
    return {"task": task_name, "doc_id": inst.doc_id, "context": inst.context, "continuations": [], "gold": None,
            "target": None}  # perplexity: the context is the scored text


def _show_lm_eval(task: Any, n: int, as_json: bool) -> None:
    """lm-eval's own requests for an lm-eval task, as lm-eval builds them."""
    from harness.tasks.sources.lm_eval import requests

    docs = requests(task, n)
    if as_json:
        for doc in docs:
            print(json.dumps(doc, ensure_ascii=False))
        return
    out.rule(safe(f"{task.name}  ({task.spec.output}, lm-eval's requests, from {task.source})"))
    for doc in docs:  # plain print: the text exactly as the model sees it, no markup
        print(f"--- doc {doc['doc_id']} (gold: {doc['gold']!r}) ---")
        for i, req in enumerate(doc["requests"]):
            print(f"  request {i}: context between the markers\n{req[0]}\n  --- end of context; then {req[1:]!r}")


def cmd_show(args: argparse.Namespace) -> int:
    from harness.tasks import prepare, resolve_tasks
    from harness.tasks.sources.lm_eval import LmEvalSettings, LmEvalTask

    data = {"*": {split: str(Path(f).resolve()) for split, f in args.data or []}}
    if args.apply_chat_template or args.system_instruction or args.fewshot_as_multiturn:
        raise HarnessError("a chat template is the model's tokenizer's: tasks show renders without a model (a run's "
                           "records keep the chat-formatted requests)", where="--apply-chat-template")
    settings = LmEvalSettings(num_fewshot=args.num_fewshot, trust_task_code=bool(args.trust_task_code),
                              apply_chat_template=args.apply_chat_template or False,
                              system_instruction=args.system_instruction,
                              fewshot_as_multiturn=bool(args.fewshot_as_multiturn))
    for task in resolve_tasks([args.name], Path.cwd(), data, lm_eval=settings):
        if isinstance(task, LmEvalTask):
            _show_lm_eval(task, args.n, args.json)
            continue
        p = prepare(task, args.n)
        if args.json:
            for inst in p.instances:
                print(json.dumps(rendered(task.name, inst), ensure_ascii=False))
            continue
        out.rule(safe(f"{task.name}  ({task.spec.output}, from {task.source})"))
        for inst in p.instances:  # plain print: the text exactly as the model sees it, no markup
            print(f"--- doc {inst.doc_id}: context between the markers ---\n{inst.context}\n--- end of context ---")
            if inst.contexts is not None:
                for i, (ctx, c) in enumerate(inst.requests):
                    print(f"  choice {i}{' (gold)' if i == inst.gold else ''}: context ends {ctx[-60:]!r}, scores {c!r}")
            elif inst.choices is not None:
                for i, c in enumerate(inst.continuations):
                    print(f"  choice {i}{' (gold)' if i == inst.gold else ''}: {c!r}")
            elif inst.target is not None:
                print(f"  target: {inst.delimiter + inst.target!r}")
    return 0


def add_parsers(sub: Any) -> None:
    t = sub.add_parser("tasks", help="list, validate or show tasks")
    tsub = t.add_subparsers(dest="action", required=True)
    ls = tsub.add_parser("list", help="tasks found in the task directories, or BIG-bench's")
    ls.add_argument("--source", choices=("local", "bigbench", "lm_eval"), default="local",
                    help="local: the task directories (default); bigbench: BIG-bench's JSON tasks (after "
                         "'harness bigbench fetch'); lm_eval: the installed lm-eval's task YAMLs (how many load, "
                         "why the others do not)")
    ls.add_argument("--match", metavar="GLOB", help="lm_eval: also list the tasks matching GLOB, with their status")
    ls.add_argument("--json", action="store_true",
                    help="lm_eval: one JSON object per task (name, output, status, reason, path)")
    ls.add_argument("--trust-task-code", action="store_true",
                    help="lm_eval: count tasks of your own folders that run Python as runnable")
    ls.set_defaults(func=cmd_list)
    v = tsub.add_parser("validate", help="load, validate and render task files (all, if none given)")
    v.add_argument("paths", nargs="*")
    v.add_argument("--limit", type=positive_int, default=None)
    v.set_defaults(func=cmd_validate)
    s = tsub.add_parser("show", help="render the first documents exactly as the model sees them")
    s.add_argument("name", help="a task or group name, a glob over names, or a task file")
    s.add_argument("--n", type=positive_int, default=3, help="documents to show (default 3)")
    s.add_argument("--json", action="store_true",
                   help="one JSON line per document: task, doc_id, context, continuations, gold, target")
    add_lm_eval_options(s)
    s.set_defaults(func=cmd_show)
