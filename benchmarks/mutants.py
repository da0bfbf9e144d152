"""Mutation testing of dehazekit/bilevel, dehazekit/lora and dehazekit/objectives: do the tests notice bugs?

Two kinds of mutants, each applied to the source file in place, tested, then restored (the file's bytes are
checked afterwards):
- named: the bugs that passed the whole suite before (issue 13) and a few more of the same kind, written out;
- generated: operator/constant/statement mutants found by walking each module's AST (``+``<->``-``,
  ``*``<->``/``,
  ``<``<->``<=``, ``==``<->``!=``, ``in``<->``not in``, ``and``<->``or``, ``not x``->``x``, numbers n->n+1
  or 2n,
  True<->False, a bare call statement -> ``pass``), a seeded sample per package. Left out on purpose: string
  literals, numbers inside ``raise`` statements (error messages), default values of parameters and of config
  dataclass fields (tests must not pin defaults), ``log.*`` calls.
A mutant is killed when the package's tests fail (or run past the timeout). Kill rate = killed / mutants.
The tests are first run on the unmutated sources; the run stops if they fail.

    OMP_NUM_THREADS=1 python benchmarks/mutants.py --per-package 40    # -> benchmarks/results/mutants.json
    OMP_NUM_THREADS=1 python benchmarks/mutants.py --package objectives --skip-named \
        --out benchmarks/results/mutants_objectives.json                # one package (repeatable)
    OMP_NUM_THREADS=1 python benchmarks/mutants.py --package objectives --all --skip-named ...  # every mutant

Mutants listed in EQUIVALENT (no behaviour can tell them apart, reason given) are not run; they are reported
as "equivalent" and left out of the kill rate. The wall time of the run is in the JSON (``wall_s``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("mutants")

# Tests run for a package's mutants (with -x: the fastest, most targeted files first).
TESTS = {
    "bilevel": [
        "tests/dehazekit/bilevel/test_wiring.py",
        "tests/dehazekit/bilevel",
        "tests/dehazekit/adapt/test_wiring.py",
    ],
    "lora": ["tests/dehazekit/lora", "tests/dehazekit/bilevel"],
    "objectives": ["tests/dehazekit/objectives"],
    "adapt": ["tests/dehazekit/adapt/test_wiring.py"],
}
# A named mutant names the bug it plants; these are the tests written for it.
NAMED_TESTS = {
    "remove_lora by name prefix (nested blocks)": ["tests/dehazekit/lora/test_lora.py"],
}


@dataclass
class Mutant:
    package: str
    file: str
    line: int
    kind: str
    old: str
    new: str
    start: int = -1  # character offset of ``old`` in the file (-1: the unique occurrence)


NAMED = [  # (package, file, old, new, what it breaks)
    (
        "bilevel",
        "dehazekit/bilevel/search.py",
        'if method == "first-order":',
        'if method in ("first-order", "rank1"):',
        "rank1 silently first-order",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/hypergrad.py",
        "return [gF + lr_w * coef * gf",
        "return [gF - lr_w * coef * gf",
        "sign-flipped reference term",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/finetune.py",
        "        self.w = lora_parameters(model)\n",
        "        self.w = lora_parameters(model)\n"
        "        [p.data.zero_() for n, p in self.w.items() if n.endswith('B')]\n",
        "stage 2 resets B",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/finetune.py",
        "            gate.freeze()",
        "            gate.alpha.data.zero_()\n            gate.freeze()",
        "stage 2 resets the gates",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/finetune.py",
        "            gate.freeze()",
        "            pass",
        "stage 2 trains the gates",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/search.py",
        "norm = torch.nn.utils.clip_grad_norm_(list(self.w.values()), self.config.grad_clip)",
        "norm = hg.sq_norm(list(self.w.values())).sqrt()",
        "no grad clipping (search)",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/finetune.py",
        "norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)",
        "norm = torch.nn.utils.clip_grad_norm_(params, 1e9)",
        "no grad clipping (fine-tune)",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/search.py",
        "self.opt_w = torch.optim.Adam(list(self.w.values()), lr=c.lr_w)",
        "self.opt_w = torch.optim.Adam(list(self.w.values()), lr=c.lr_alpha)",
        "lr_alpha passed as lr_w (search)",
    ),
    (
        "adapt",
        "dehazekit/adapt/run.py",
        "lr_w=c.lr_w,",
        "lr_w=c.lr_alpha,",
        "lr_alpha passed as lr_w (adapt)",
    ),
    (
        "adapt",
        "dehazekit/adapt/run.py",
        "hypergrad=c.hypergrad,",
        "",
        "--hypergrad ignored by adapt()",
    ),
    (
        "adapt",
        "dehazekit/adapt/run.py",
        "FinetuneConfig(lr=c.lr_w)",
        "FinetuneConfig()",
        "fine-tune lr ignored",
    ),
    (
        "adapt",
        "dehazekit/adapt/api.py",
        "selected = select_top_k(search_gates, config.top_k, config.gate_threshold)",
        "selected = select_top_k(search_gates, config.top_k, config.gate_threshold)[::-1]",
        "selection is not the top-K order of the reported gates",
    ),
    (
        "lora",
        "dehazekit/lora/inject.py",
        "if layer.block not in keep:",
        "if _owner(name, keep) is None:",
        "remove_lora by name prefix (nested blocks)",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/selection.py",
        "key=lambda b: (-float(gates[b]), b)",
        "key=lambda b: (float(gates[b]), b)",
        "selection takes the lowest gates",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/search.py",
        "if lower and self.config.weight_decay_w > 0:",
        "if False:",
        "lower level without weight decay",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/hypergrad.py",
        "return cross, [h + damping * q",
        "return cross, [h - damping * q",
        "cg damping sign",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/search.py",
        "xi = c.unrolled_xi or hg.adam_effective_lr(",
        "xi = c.lr_w or (",
        "unrolled virtual step = lr_w",
    ),
    (
        "bilevel",
        "dehazekit/bilevel/search.py",
        "        x0 = self._cg_v if c.cg_warm_start else None",
        "        x0 = None",
        "cg warm start ignored",
    ),
]

# (file, text of the mutated line (stripped), old, new, why no test can tell the mutant from the original).
# Keyed by the line's text, not its number, so edits elsewhere in the file do not move an entry.
EQUIVALENT: list[tuple[str, str, str, str, str]] = [
    (
        "dehazekit/bilevel/finetune.py",
        "gate.freeze()",
        "gate.freeze()",
        "pass",
        "the requires_grad loop two lines below sets every gate logit to requires_grad=False anyway",
    ),
    (
        "dehazekit/bilevel/hypergrad.py",
        "for p, v in zip(params, values, strict=True):",
        "True",
        "False",
        "_restore's two callers pass clones made from the same parameter list: the lengths always match",
    ),
    (
        "dehazekit/objectives/h2c.py",
        "if tuple(image.shape[-2:]) != self.image_size:",
        "2",
        "3",
        "then every image is resized, but a same-size bilinear resize is the identity (0.0 difference)",
    ),
]


def _equivalent(mutant: Mutant) -> str | None:
    text = (ROOT / mutant.file).read_text().splitlines()[mutant.line - 1].strip()
    for file, line, old, new, why in EQUIVALENT:
        if (file, line, old.strip(), new.strip()) == (
            mutant.file,
            text,
            mutant.old.strip(),
            mutant.new.strip(),
        ):
            return why
    return None


_BINOPS = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*")}
_CMPOPS = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.In: (" in ", " not in "),
    ast.NotIn: (" not in ", " in "),
    ast.Is: (" is ", " is not "),
    ast.IsNot: (" is not ", " is "),
}


def _offsets(text: str) -> list[int]:
    starts, pos = [], 0
    for line in text.splitlines(keepends=True):
        starts.append(pos)
        pos += len(line)
    return starts


class _Finder(ast.NodeVisitor):
    """Collects (offset, old, new, kind) mutation points of one module."""

    def __init__(self, text: str) -> None:
        self.text, self.starts, self.points = text, _offsets(text), []
        self.skip_depth = 0

    def _pos(self, lineno: int, col: int) -> int:
        return self.starts[lineno - 1] + col

    def _between(self, left: ast.AST, right: ast.AST, old: str, new: str, kind: str) -> None:
        a, b = self._pos(left.end_lineno, left.end_col_offset), self._pos(right.lineno, right.col_offset)
        segment = self.text[a:b]
        if segment.count(old.strip()) == 1:
            at = a + segment.index(old.strip())
            self.points.append((at, old.strip(), new.strip(), kind))

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) in _BINOPS and not self.skip_depth:
            self._between(node.left, node.right, *_BINOPS[type(node.op)], "binop")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        if len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS and not self.skip_depth:
            old, new = _CMPOPS[type(node.ops[0])]
            a = self._pos(node.left.end_lineno, node.left.end_col_offset)
            b = self._pos(node.comparators[0].lineno, node.comparators[0].col_offset)
            segment = self.text[a:b]
            if segment.strip() == old.strip():
                self.points.append((a, segment, f" {new.strip()} ", "compare"))
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        if not self.skip_depth:
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            self._between(node.values[0], node.values[1], f" {old} ", f" {new} ", "boolop")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not) and not self.skip_depth:
            at = self._pos(node.lineno, node.col_offset)
            if self.text.startswith("not ", at):
                self.points.append((at, "not ", "", "not"))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if self.skip_depth or isinstance(node.value, str) or node.value is None:
            return
        at = self._pos(node.lineno, node.col_offset)
        old = self.text[at : self._pos(node.end_lineno, node.end_col_offset)]
        if isinstance(node.value, bool):
            self.points.append((at, old, str(not node.value), "constant"))
        elif isinstance(node.value, (int, float)):
            new = (
                repr(node.value + 1)
                if isinstance(node.value, int) or node.value == 0
                else repr(node.value * 2)
            )
            self.points.append((at, old, new, "constant"))

    def visit_Expr(self, node: ast.Expr) -> None:
        call = node.value
        if isinstance(call, ast.Call) and not self.skip_depth and not _is_log(call):
            at = self._pos(node.lineno, node.col_offset)
            old = self.text[at : self._pos(node.end_lineno, node.end_col_offset)]
            self.points.append((at, old, "pass", "statement"))
        self.generic_visit(node)

    def _skipped(self, node: ast.AST) -> None:
        self.skip_depth += 1
        self.generic_visit(node)
        self.skip_depth -= 1

    visit_Raise = _skipped
    visit_arguments = _skipped  # parameter defaults
    visit_AnnAssign = _skipped  # dataclass field defaults

    def visit_Call(self, node: ast.Call) -> None:
        if _is_log(node):
            return
        self.generic_visit(node)


def _is_log(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in ("log", "logging")
    )


def generated(package: str) -> list[Mutant]:
    out = []
    for path in sorted((ROOT / "dehazekit" / package).glob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        finder = _Finder(text)
        for node in tree.body:  # module docstring and __all__ lists are data, not behaviour
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue
            finder.visit(node)
        starts = _offsets(text)
        for at, old, new, kind in finder.points:
            line = max(i for i, s in enumerate(starts) if s <= at) + 1
            out.append(Mutant(package, str(path.relative_to(ROOT)), line, kind, old, new, at))
    return out


def named() -> list[tuple[Mutant, str]]:
    out = []
    for package, file, old, new, what in NAMED:
        text = (ROOT / file).read_text()
        if text.count(old) != 1:
            raise SystemExit(f"named mutant '{what}': {old!r} occurs {text.count(old)} times in {file}")
        line = text[: text.index(old)].count("\n") + 1
        out.append((Mutant(package, file, line, "named", old, new), what))
    return out


def _preload() -> None:
    """Import the heavy third-party modules once; each mutant's test run is a fork that imports dehazekit
    fresh."""
    import importlib

    os.environ["OMP_NUM_THREADS"] = "1"
    for name in (
        "numpy",
        "torch",
        "PIL.Image",
        "pytest",
        "safetensors.torch",
        "open_clip",
        "matplotlib.pyplot",
        "typer",
        "rich",
    ):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import torch

    torch.set_num_threads(1)
    assert not any(m == "dehazekit" or m.startswith("dehazekit.") for m in sys.modules), "dehazekit preloaded"


def _pytest_in_fork(tests: list[str], timeout: float) -> str:
    pid = os.fork()
    if pid == 0:  # child: run the tests on the mutated sources, never return
        code = 1
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent's handler restores files; not ours to run
        try:
            import pytest

            os.chdir(ROOT)
            sys.path.insert(0, str(ROOT))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            code = int(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *tests]))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = 0
                return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
            time.sleep(0.2)
        return "killed (timeout)"
    finally:
        if pid:  # timed out, or we are being stopped: the child must not outlive us
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def run_one(mutant: Mutant, tests: list[str], timeout: float) -> tuple[str, float]:
    path = ROOT / mutant.file
    original = path.read_bytes()
    digest = hashlib.sha256(original).hexdigest()
    text = original.decode()
    at = text.index(mutant.old) if mutant.start < 0 else mutant.start
    assert text[at : at + len(mutant.old)] == mutant.old, mutant
    start = time.perf_counter()

    def restore(*_: object) -> None:
        path.write_bytes(original)
        if _:  # called as a signal handler
            raise SystemExit(1)

    previous = signal.signal(signal.SIGTERM, restore)
    try:
        path.write_text(text[:at] + mutant.new + text[at + len(mutant.old) :])
        outcome = _pytest_in_fork(tests, timeout)
    finally:
        restore()
        signal.signal(signal.SIGTERM, previous)
    if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        raise SystemExit(f"{path} was not restored")
    return outcome, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-package", type=int, default=40, help="generated mutants sampled per package")
    parser.add_argument("--packages", nargs="+", default=["bilevel", "lora", "objectives"])
    parser.add_argument(
        "--package",
        action="append",
        choices=sorted(TESTS),
        help="only this package (repeatable; wins over --packages)",
    )
    parser.add_argument("--all", action="store_true", help="every generated mutant, not a sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--skip-named", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "mutants.json")
    parser.add_argument("--table", type=Path, nargs="+", help="print a markdown table of these result files")
    args = parser.parse_args()
    if args.package:
        args.packages = args.package
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.table:
        print(table([json.loads(p.read_text()) for p in args.table]))
        return
    todo: list[tuple[Mutant, str]] = [] if args.skip_named else named()
    if args.package:  # a per-package run keeps only that package's named mutants
        todo = [t for t in todo if t[0].package in args.packages]
    rng = random.Random(args.seed)
    population = {}
    for package in args.packages:
        pool = generated(package)
        population[package] = len(pool)
        chosen = pool if args.all else rng.sample(pool, min(args.per_package, len(pool)))
        todo += [(m, f"{m.kind}: {m.old!r} -> {m.new!r}") for m in chosen]
    _preload()
    began = time.perf_counter()
    # Unmutated sources must pass: on red tests every mutant would count as killed.
    for tests in sorted({tuple(NAMED_TESTS.get(what, TESTS[m.package])) for m, what in todo}):
        if _pytest_in_fork(list(tests), args.timeout) != "survived":
            raise SystemExit(f"the tests fail without any mutant: {' '.join(tests)}")
    rows: list[dict] = []
    for i, (mutant, what) in enumerate(todo, 1):
        tests = NAMED_TESTS.get(what, TESTS[mutant.package])
        why = _equivalent(mutant)
        if why:
            outcome, seconds, what = "equivalent", 0.0, f"{what} (equivalent: {why})"
        else:
            outcome, seconds = run_one(mutant, tests, args.timeout)
        rows.append({**asdict(mutant), "what": what, "outcome": outcome, "seconds": round(seconds, 1)})
        log.info(
            "[%d/%d] %-8s %s:%d %s -> %s",
            i,
            len(todo),
            mutant.package,
            mutant.file,
            mutant.line,
            what,
            outcome,
        )
        _write(args, rows, population, time.perf_counter() - began)
    wall = time.perf_counter() - began
    _write(args, rows, population, wall)
    log.info("%d mutants in %.0f s", len(rows), wall)


def table(results: list[dict]) -> str:
    """Markdown: kill rate per (kind, package) over several result files, then every survivor."""
    rows = [r for res in results for r in res["rows"]]
    lines = ["| mutants | count | killed | kill rate |", "|---|---|---|---|"]
    for group in sorted({(r["kind"] == "named", r["package"]) for r in rows}):
        sel = [
            r for r in rows if (r["kind"] == "named", r["package"]) == group and r["outcome"] != "equivalent"
        ]
        killed = sum(r["outcome"].startswith("killed") for r in sel)
        name = f"{'named' if group[0] else 'generated'} / {group[1]}"
        lines.append(f"| {name} | {len(sel)} | {killed} | {killed / len(sel):.0%} |")
    walls = [f"{res.get('wall_s', '?')} s" for res in results]
    lines += ["", f"Wall time: {', '.join(walls)}.", "", "Survivors:", ""]
    lines += [f"- `{r['file']}:{r['line']}` {r['what']}" for r in rows if r["outcome"] == "survived"]
    lines += ["", "Equivalent (not counted):", ""]
    lines += [f"- `{r['file']}:{r['line']}` {r['what']}" for r in rows if r["outcome"] == "equivalent"]
    return "\n".join(lines)


def _write(args: argparse.Namespace, rows: list[dict], population: dict[str, int], wall: float) -> None:
    summary = {}
    for group in sorted({(r["kind"] == "named", r["package"]) for r in rows}):
        every = [r for r in rows if (r["kind"] == "named", r["package"]) == group]
        sel = [r for r in every if r["outcome"] != "equivalent"]
        killed = sum(r["outcome"].startswith("killed") for r in sel)
        summary[f"{'named' if group[0] else 'generated'}/{group[1]}"] = {
            "mutants": len(sel),
            "killed": killed,
            "kill_rate": round(killed / len(sel), 3) if sel else None,
            "equivalent_excluded": len(every) - len(sel),
        }
    result = {
        "benchmark": "mutants",
        "args": {k: str(v) for k, v in vars(args).items()},
        "generated_population": population,
        "wall_s": round(wall, 1),
        "summary": summary,
        "survivors": [r for r in rows if r["outcome"] == "survived"],
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
