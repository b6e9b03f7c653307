"""Mutation testing of the core modules with mutmut 3, one module at a time (``make mutate``).

    .venv/bin/python benchmarks/mutate.py [--max-children N] [metrics curvature strategies adapters]
    .venv/bin/python benchmarks/mutate.py strategies --mutants 'clasr.strategies.ihr.x_rescale*'

mutmut 3 reads its settings only from ``./pyproject.toml`` and keeps its state in
``./mutants/``. So each module M runs in its own directory ``mutants/M/``, which holds links to
``src/`` and ``tests/`` and a copy of ``pyproject.toml`` whose ``[tool.mutmut]`` gains
``only_mutate = ["src/clasr/M/*"]`` and, as the test selection, M's list in
``[tool.mutmut.module_tests]`` — the one place where the per-module test files are named.
mutmut runs against each mutant only the selected tests that reach the mutated function.
A module's run resumes where it stopped; ``rm -rf mutants/M`` starts it over. ``--mutants``
passes mutmut name patterns (``clasr.<module>.<file>.x_<function>__mutmut_<n>``, ``*`` allowed):
only those run, and they run again even if already decided (mutmut's rule for named mutants).

mutmut's "timeout" is a CPU-time limit (SIGXCPU), and on this project's 2-core machines it
fires on mutants whose tests pass: a mutant of ``LoRALinear.describe`` that renames a key timed
out under mutmut and passed all 95 adapter tests in 13 s when run alone. So each timeout is
run again alone, without mutmut's limit (:func:`recheck_timeouts`: the module's tests with the
mutant active, a wall-clock limit of ``--recheck-limit`` seconds; results kept in
``mutants/M/timeouts_rechecked.json`` with a digest of the test files it ran, so a rerun
skips them until the tests change): it is killed if a test fails,
survived if all pass, and a timeout (detected) only if it runs past the limit again.

After each module the counts and the score are printed: killed over the mutants that some
selected test reaches (crashes and confirmed timeouts count as killed, interrupted checks and
timeouts not yet rechecked as not reached: :func:`score`). Survivors:
``cd mutants/M && ../../.venv/bin/mutmut results``; one mutant's diff: ``… mutmut show NAME``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

from clasr.atomic import write_json

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).parent / "mutmut"
DETECTED = ("killed", "timeout", "segfault", "aborted", "caught by type check")
UNDECIDED = ("no tests", "skipped", "not checked", "check was interrupted by user", "timeout, not rechecked")
RECHECKED = "timeouts_rechecked.json"


def module_tests() -> dict[str, list[str]]:
    """Each module's test files, from ``[tool.mutmut.module_tests]`` in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return config["tool"]["mutmut"]["module_tests"]


def module_pyproject(module: str, tests: list[str]) -> str:
    """pyproject.toml with ``[tool.mutmut]`` restricted to ``src/clasr/<module>/*`` and its tests."""
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    clash = sorted({"only_mutate", "pytest_add_cli_args_test_selection"} & tomllib.loads(text)["tool"]["mutmut"].keys())
    if clash:
        raise ValueError(f"{ROOT / 'pyproject.toml'}: [tool.mutmut] sets {clash}; benchmarks/mutate.py sets them per module")
    settings = f'only_mutate = ["src/clasr/{module}/*"]\npytest_add_cli_args_test_selection = {json.dumps(tests)}\n'
    return text.replace("[tool.mutmut]\n", "[tool.mutmut]\n" + settings, 1)


def prepare(module: str, tests: list[str]) -> Path:
    """mutants/<module>/ with links to src/ and tests/ and the module's pyproject.toml."""
    work = ROOT / "mutants" / module
    work.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests"):
        if not (work / name).is_symlink():
            (work / name).symlink_to(Path("..", "..", name))
    (work / "pyproject.toml").write_text(module_pyproject(module, tests), "utf-8")
    return work


def _statuses(work: Path, module: str) -> dict[str, str]:
    """Each mutant's status as mutmut recorded it (a signal-killed "suspicious" one: "aborted")."""
    from mutmut.stats import status_by_exit_code

    statuses = {}
    for meta in (work / "mutants" / "src" / "clasr" / module).glob("*.py.meta"):
        for key, code in json.loads(meta.read_text("utf-8"))["exit_code_by_key"].items():
            status = status_by_exit_code[code]
            statuses[key] = "aborted" if status == "suspicious" and code is not None and code < 0 else status
    return statuses


def tests_digest(folder: Path, tests: list[str]) -> str:
    """SHA-1 over the module's test files in ``folder``: a recheck holds only for the tests it ran."""
    digest = hashlib.sha1()
    for name in tests:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()


def _rechecked(work: Path, digest: str) -> dict[str, str]:
    """mutant → its recheck's status, for rechecks made with the tests of ``digest``."""
    path = work / RECHECKED
    kept = json.loads(path.read_text("utf-8")) if path.exists() else {}
    return kept.get("statuses", {}) if kept.get("tests") == digest else {}


def recheck_timeouts(work: Path, module: str, tests: list[str], limit_s: float) -> None:
    """Run every mutant that mutmut timed out again, alone: the module's tests with the mutant
    active (mutmut's ``MUTANT_UNDER_TEST``) and pyproject's pytest arguments, in
    ``mutants/M/mutants/``; killed when they fail, survived when they pass, timeout past
    ``limit_s`` seconds of wall clock. The tests are mutmut's copies in that folder (those its
    run used; ``mutmut run`` copies them again). Each result is written (atomically) as soon as it is known."""
    arguments = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]["pytest_add_cli_args"]
    digest = tests_digest(work / "mutants", tests)
    done = _rechecked(work, digest)
    todo = [key for key, status in sorted(_statuses(work, module).items()) if status == "timeout" and key not in done]
    for index, key in enumerate(todo, 1):
        environment = os.environ | {"MUTANT_UNDER_TEST": key, "PYTHONPATH": "src"}
        try:
            run = subprocess.run([sys.executable, "-m", "pytest", *arguments, *tests], cwd=work / "mutants",
                                 env=environment, capture_output=True, timeout=limit_s)
            done[key] = "survived" if run.returncode == 0 else "killed"
        except subprocess.TimeoutExpired:
            done[key] = "timeout"
        write_json(work / RECHECKED, {"tests": digest, "statuses": done})
        print(f"recheck {index}/{len(todo)} {key}: {done[key]}", flush=True)


def score(work: Path, module: str, tests: list[str]) -> str:
    """Counts by status over the module's mutants, and killed / reached: a mutant is killed when
    the tests fail, time out again when rechecked alone (:func:`recheck_timeouts`), crash
    (segfault, killed by a signal, or any other signal such as SIGABRT, which mutmut calls
    "suspicious": IHR's tests abort on exit when they fail under mutmut's forked runner) or a
    type check refuses it; reached unless no selected test covers it, it was skipped, not run
    or interrupted, or it is a timeout not yet rechecked."""
    rechecked = _rechecked(work, tests_digest(work / "mutants", tests))
    counts: Counter[str] = Counter()
    for key, status in _statuses(work, module).items():
        counts[rechecked.get(key, "timeout, not rechecked") if status == "timeout" else status] += 1
    killed = sum(counts[s] for s in DETECTED)
    reached = sum(counts.values()) - sum(counts[s] for s in UNDECIDED)
    rate = f"{100 * killed / reached:.1f} %" if reached else "n/a"
    return f"{module}: {dict(sorted(counts.items()))}; score {rate} ({killed} / {reached})"


def main() -> int:
    tests = module_tests()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", metavar="MODULE", help=f"any of {', '.join(tests)} (default: all)")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--mutants", nargs="+", default=[], metavar="PATTERN", help="only these mutants (one module)")
    parser.add_argument("--recheck-limit", type=float, default=600, help="seconds of wall clock for a timeout rerun alone")
    args = parser.parse_args()
    args.modules = args.modules or list(tests)
    unknown = sorted(set(args.modules) - tests.keys())
    if unknown:
        parser.error(f"unknown modules {unknown}; [tool.mutmut.module_tests] in pyproject.toml has {', '.join(tests)}")
    if args.recheck_limit <= 0:
        parser.error(f"--recheck-limit {args.recheck_limit:g}: needs a positive number of seconds")
    if args.mutants and len(args.modules) != 1:
        parser.error("--mutants needs exactly one module")
    summaries = []
    for module in args.modules:
        work = prepare(module, tests[module])
        print(f"== mutmut over src/clasr/{module}/ in {work.relative_to(ROOT)}", flush=True)
        run = subprocess.run([MUTMUT, "run", "--max-children", str(args.max_children), *args.mutants], cwd=work)
        subprocess.run([MUTMUT, "results"], cwd=work)
        recheck_timeouts(work, module, tests[module], args.recheck_limit)
        summaries.append(score(work, module, tests[module]))
        if run.returncode != 0:
            print(f"mutmut stopped with exit status {run.returncode} on {module}", file=sys.stderr)
            print("\n".join(summaries))
            return run.returncode
    print("\n".join(summaries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
