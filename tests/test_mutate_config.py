"""`make mutate` (benchmarks/mutate.py): every core module has test files that exist, and each
module's mutmut configuration is the repository's pyproject.toml restricted to that module."""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mutate_script():
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "benchmarks" / "mutate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_core_module_names_existing_test_files():
    tests = _mutate_script().module_tests()
    assert set(tests) == {"metrics", "curvature", "strategies", "adapters"}
    for module, files in tests.items():
        assert (ROOT / "src" / "clasr" / module).is_dir()
        assert files and all((ROOT / f).is_file() for f in files), (module, files)


def test_module_pyproject_restricts_mutmut_to_the_module_and_keeps_the_rest():
    script = _mutate_script()
    files = script.module_tests()["curvature"]
    written = tomllib.loads(script.module_pyproject("curvature", files))
    original = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert written["tool"]["mutmut"]["only_mutate"] == ["src/clasr/curvature/*"]
    assert written["tool"]["mutmut"]["pytest_add_cli_args_test_selection"] == files
    del written["tool"]["mutmut"]["only_mutate"], written["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    assert written == original


def test_a_pyproject_that_sets_only_mutate_itself_is_refused(tmp_path, monkeypatch):
    script = _mutate_script()
    text = (ROOT / "pyproject.toml").read_text("utf-8").replace(
        "[tool.mutmut]\n", '[tool.mutmut]\nonly_mutate = ["src/*"]\n', 1
    )
    (tmp_path / "pyproject.toml").write_text(text, "utf-8")
    monkeypatch.setattr(script, "ROOT", tmp_path)
    with pytest.raises(ValueError, match=r"\[tool.mutmut\] sets \[.only_mutate.\]"):
        script.module_pyproject("curvature", ["tests/test_curvature_kfac.py"])


def test_command_line_defaults_to_every_module_and_refuses_bad_arguments(monkeypatch, capsys):
    script = _mutate_script()
    calls = []
    monkeypatch.setattr(script, "prepare", lambda module, tests: script.ROOT / "mutants" / module)
    monkeypatch.setattr(script, "score", lambda work, module, tests: module)
    monkeypatch.setattr(script, "recheck_timeouts", lambda work, module, tests, limit_s: None)
    monkeypatch.setattr(script.subprocess, "run", lambda cmd, cwd: calls.append(cmd[1:]) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr(sys, "argv", ["mutate.py"])
    assert script.main() == 0
    assert [c for c in calls if c[0] == "run"] == [["run", "--max-children", "2"]] * 4
    assert capsys.readouterr().out.splitlines()[-4:] == ["metrics", "curvature", "strategies", "adapters"]
    calls.clear()
    monkeypatch.setattr(sys, "argv", ["mutate.py", "curvature", "--max-children", "1", "--mutants", "clasr.curvature.solve.*"])
    assert script.main() == 0
    assert calls[0] == ["run", "--max-children", "1", "clasr.curvature.solve.*"]
    for argv, message in ((["nope"], "unknown modules ['nope']"), (["--mutants", "x*"], "--mutants needs exactly one module"),
                          (["--recheck-limit", "0"], "--recheck-limit 0: needs a positive number of seconds")):
        monkeypatch.setattr(sys, "argv", ["mutate.py", *argv])
        with pytest.raises(SystemExit):
            script.main()
        assert message in capsys.readouterr().err


def _copy_tests(work, names):
    """mutmut's copies of the test files in ``work/mutants/``."""
    for name in names:
        (work / "mutants" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "mutants" / name).write_bytes((ROOT / name).read_bytes())


def _stand_in_statuses(monkeypatch):
    """Exit codes as mutmut 3 maps them (a stand-in for ``mutmut.stats``, not installed in CI)."""
    import types

    names = defaultdict(lambda: "suspicious", {1: "killed", 36: "timeout", -11: "segfault", -9: "segfault", 0: "survived",
                                                33: "no tests", 2: "check was interrupted by user"})
    monkeypatch.setitem(sys.modules, "mutmut.stats", types.SimpleNamespace(status_by_exit_code=names))


def test_score_counts_crashes_and_confirmed_timeouts_as_killed_and_leaves_undecided_ones_out(tmp_path, monkeypatch):
    """killed 1, segfault −11, SIGKILL −9 and SIGABRT −6 (mutmut: "suspicious") detect the
    mutant; a timeout only as its recheck alone decided it (timed out again: detected; tests
    failed: killed; passed: survived; not rechecked: not reached); survived 0 and an unknown
    positive code (also "suspicious") do not detect; no tests 33 and interrupted 2 are not reached."""
    _stand_in_statuses(monkeypatch)
    folder = tmp_path / "mutants" / "src" / "clasr" / "curvature"
    folder.mkdir(parents=True)
    codes = {"a": 1, "b": 36, "c": -11, "d": -9, "e": 0, "f": 33, "g": 2, "h": -6, "i": 99,
             "j": 36, "k": 36, "l": 36}
    (folder / "kfac.py.meta").write_text(json.dumps({"exit_code_by_key": codes}), "utf-8")
    script, tests = _mutate_script(), ["tests/test_curvature_kfac.py"]
    _copy_tests(tmp_path, [*tests, "tests/test_ewc_fisher.py"])
    rechecked = {"b": "timeout", "j": "survived", "k": "killed"}
    (tmp_path / "timeouts_rechecked.json").write_text(
        json.dumps({"tests": script.tests_digest(tmp_path / "mutants", tests), "statuses": rechecked}), "utf-8")
    line = script.score(tmp_path, "curvature", tests)
    assert line.endswith("score 66.7 % (6 / 9)"), line
    assert "'aborted': 1" in line and "'suspicious': 1" in line and "'timeout, not rechecked': 1" in line
    stale = script.score(tmp_path, "curvature", ["tests/test_curvature_kfac.py", "tests/test_ewc_fisher.py"])
    assert stale.endswith("score 66.7 % (4 / 6)") and "'timeout, not rechecked': 4" in stale  # other tests: rechecks void


def test_recheck_runs_each_timeout_alone_with_the_mutant_active_and_keeps_the_results(tmp_path, monkeypatch):
    _stand_in_statuses(monkeypatch)
    script = _mutate_script()
    folder = tmp_path / "mutants" / "src" / "clasr" / "adapters"
    folder.mkdir(parents=True)
    (folder / "lora.py.meta").write_text(json.dumps({"exit_code_by_key": {"t1": 36, "t2": 36, "t3": 36, "k": 1}}), "utf-8")
    runs = []

    def fake_run(command, cwd, env, capture_output, timeout):
        runs.append((env["MUTANT_UNDER_TEST"], cwd, command[-1], timeout))
        if env["MUTANT_UNDER_TEST"] == "t3":
            raise subprocess.TimeoutExpired(command, timeout)
        return subprocess.CompletedProcess(command, {"t1": 0, "t2": 1}[env["MUTANT_UNDER_TEST"]])

    monkeypatch.setattr(script.subprocess, "run", fake_run)
    tests = ["tests/test_adapters_math.py"]
    _copy_tests(tmp_path, [*tests, "tests/test_adapters_model.py"])
    script.recheck_timeouts(tmp_path, "adapters", tests, 60)
    assert runs == [(key, tmp_path / "mutants", "tests/test_adapters_math.py", 60) for key in ("t1", "t2", "t3")]
    kept = json.loads((tmp_path / "timeouts_rechecked.json").read_text("utf-8"))
    assert kept == {"tests": script.tests_digest(tmp_path / "mutants", tests), "statuses": {"t1": "survived", "t2": "killed", "t3": "timeout"}}
    runs.clear()
    script.recheck_timeouts(tmp_path, "adapters", tests, 60)
    assert runs == []  # a rerun keeps what was rechecked with the same tests
    script.recheck_timeouts(tmp_path, "adapters", [*tests, "tests/test_adapters_model.py"], 60)
    assert [key for key, *_ in runs] == ["t1", "t2", "t3"]  # other tests: rechecked again
