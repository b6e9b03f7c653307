"""Paired tests across several runs in one table (``clasr compare A B C … --paired``): every
pair, Holm over the whole table, the verdicts, the CSV and the refusals."""

import csv
import io
from collections import Counter

import numpy as np
import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from clasr.cli import app
from clasr.metrics.continual import continual_metrics
from clasr.metrics import run_stats
from clasr.metrics.run_stats import (
    VERDICT_NONE, RunErrors, SetErrors, matrices, paired_comparison, paired_comparisons, sign_flips,
)
from clasr.report.paired import paired_results, run_pairs
from test_seeds import _fake_run, _fake_sweep


def _one_cell_runs(*final_errors):
    """Runs of one task over four one-word utterances, the foundation row shared (no errors);
    ``final_errors`` per run: each utterance's errors after the task."""
    ids, words = ("u0", "u1", "u2", "u3"), np.ones(4, dtype=np.int64)
    return [
        RunErrors([SetErrors("a", ids, np.array([[[0, 0, 0, 0], errors]]), words)], [], ("foundation", "after a"))
        for errors in final_errors
    ]


def test_holm_runs_over_every_line_of_every_pair_by_hand():
    """One compared line per pair ("after a: a"; Average WER and learning of one task weigh that
    cell alone). Exact sign-flip p-values: A − B has 4 equal non-zero contributions, p = 2/16;
    A − C one, p = 1; B − C three, p = 2/8. Holm over m = 3: sorted 0.125·3 = 0.375,
    max(0.375, 0.25·2) = 0.5, max(0.5, 1·1) = 1."""
    runs = _one_cell_runs([0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0])
    table = paired_comparisons(runs, [(0, 1), (0, 2), (1, 2)], n_resamples=300)
    assert [[r.quantity for r in results] for results in table] == [["after a: a"]] * 3
    (ab,), (ac,), (bc,) = table
    assert [ab.p_permutation, ac.p_permutation, bc.p_permutation] == pytest.approx([0.125, 1.0, 0.25])
    assert [ab.p_holm, ac.p_holm, bc.p_holm] == pytest.approx([0.375, 1.0, 0.5])
    assert (ab.difference, ac.difference, bc.difference) == pytest.approx((-1.0, -0.25, 0.75))
    assert ab.interval == pytest.approx((-1.0, -1.0))  # every utterance differs by one error in one word
    for result, d in ((ab, [-0.25] * 4), (bc, [0, 0.25, 0.25, 0.25])):
        nonzero = np.array([x for x in d if x])
        expected = scipy_stats.wilcoxon(nonzero, correction=False, method="approx").pvalue
        assert result.p_wilcoxon == pytest.approx(expected)
    # alone, the same pair is a family of one: Holm leaves its p as it is
    assert paired_comparison(runs[0], runs[1], n_resamples=300)[0].p_holm == pytest.approx(0.125)


def _one_task_run(ids, words, errors):
    """A run of one task ``a`` (seeds × 2 rows × utterances of errors), no general set."""
    return RunErrors([SetErrors("a", ids, errors, words)], [], ("foundation", "after a"))


def _random_runs(count, tasks=3, shift_row0_of=None):
    """``count`` runs over ``tasks`` task sets and one general set, random errors (all rows
    differ between runs; row 0 shared unless ``shift_row0_of`` names a run whose row 0 differs)."""
    rng = np.random.default_rng(21)
    names = [*(f"t{t}" for t in range(tasks)), "g"]
    words = {name: rng.integers(3, 15, 25) for name in names}
    foundation = {name: rng.binomial(words[name], 0.3) for name in names}
    runs = []
    for index in range(count):
        sets = []
        for name in names:
            errors = rng.binomial(words[name], 0.1 + 0.05 * index, size=(1, tasks + 1, 25))
            errors[:, 0] = foundation[name] + (index == shift_row0_of)
            sets.append(SetErrors(name, tuple(f"{name}{u}" for u in range(25)), errors, words[name]))
        runs.append(RunErrors(sets[:tasks], sets[tasks:], ("foundation", *(f"after t{t}" for t in range(tasks)))))
    return runs


def test_the_family_is_the_whole_table_and_the_pairs_share_their_quantities():
    runs = _random_runs(3)
    pairs = run_pairs(["x", "y", "z"])
    assert pairs == [(0, 1), (0, 2), (1, 2)]
    table = paired_comparisons(runs, pairs, n_resamples=200)
    assert len({tuple(r.quantity for r in results) for results in table}) == 1
    flat = [r for results in table for r in results]
    ordered = sorted(r.p_permutation for r in flat)
    m = len(ordered)
    by_definition = [max(min(1.0, (m - k) * ordered[k]) for k in range(i + 1)) for i in range(m)]
    for result in flat:
        assert result.p_holm == pytest.approx(by_definition[ordered.index(result.p_permutation)])
    alone = {r.quantity: r for r in paired_comparison(runs[0], runs[1], n_resamples=200)}
    for result in table[0]:  # the same difference and bootstrap interval as the pair alone
        assert (result.difference, *result.interval) == pytest.approx((alone[result.quantity].difference,
                                                                       *alone[result.quantity].interval))


def test_a_pre_specified_family_tests_only_its_quantities_and_holm_runs_over_them():
    """``only``: the demo's headline (BWT of each strategy against the first) is a family of its
    own: the same differences and intervals as in the whole table, Holm over its lines alone."""
    runs = _random_runs(3)
    whole = {(i, r.quantity): r for i, results in enumerate(paired_comparisons(runs, [(0, 1), (0, 2)], n_resamples=200))
             for r in results}
    family = paired_comparisons(runs, [(0, 1), (0, 2)], n_resamples=200, only=("backward_transfer",))
    assert [[r.quantity for r in results] for results in family] == [["backward_transfer"]] * 2
    (ab,), (ac,) = family
    for index, result in enumerate((ab, ac)):
        full = whole[(index, "backward_transfer")]
        assert (result.difference, *result.interval) == pytest.approx((full.difference, *full.interval))
    low, high = sorted((ab.p_permutation, ac.p_permutation))
    assert sorted((ab.p_holm, ac.p_holm)) == pytest.approx([min(1.0, 2 * low), max(min(1.0, 2 * low), high)])
    with pytest.raises(ValueError, match=r"no paired quantity named bwt in these runs \(they have: after t0: t0, "):
        paired_comparisons(runs, [(0, 1)], n_resamples=50, only=("bwt",))


def test_a_large_family_draws_enough_sign_flips_to_reject(monkeypatch):
    """After n flips a Monte Carlo p is at least 1/(n + 1); Holm multiplies it by m. Only a
    test whose first p is below α draws the family's number of flips."""
    assert sign_flips(10, 0.05) == 10000 and sign_flips(1000, 0.05) == 400000
    for m in (1, 30, 500, 5000):
        assert m / (sign_flips(m, 0.05) + 1) < 0.05 / 20
    for first_p, expected in ((0.01, [10000, "family"]), (0.5, [10000])):
        drawn = []
        monkeypatch.setattr(run_stats, "sign_flip_test", lambda d, n, seed: drawn.append(n) or first_p)
        table = paired_comparisons(_random_runs(3), [(0, 1), (0, 2), (1, 2)], n_resamples=50)
        m = sum(map(len, table))
        assert m == 3 * (3 * 4 + 4) and drawn == [sign_flips(m, 0.05) if n == "family" else n for n in expected] * m


def test_the_two_stage_permutation_p_is_valid_under_the_null(monkeypatch):
    """Symmetric contributions (H0): P(p ≤ t) ≤ t, within 3 standard errors, for t below and
    above α, with 99 first flips and 999 for the second stage."""
    monkeypatch.setattr(run_stats, "FIRST_FLIPS", 99)
    rng = np.random.default_rng(7)
    p = np.array([run_stats._permutation_p(rng.normal(size=30), 999, 0.05, seed) for seed in range(3000)])
    for t in (0.01, 0.03, 0.05, 0.1, 0.3):
        assert np.mean(p <= t) <= t + 3 * np.sqrt(t * (1 - t) / len(p)), t
    assert 0.01 < np.mean(p <= 0.05) and np.mean(p <= 0.3) > 0.25  # not a test that never rejects
    d = rng.normal(0.8, 1.0, size=30)
    assert run_stats.sign_flip_test(d, 99, 3) < 0.05
    assert run_stats._permutation_p(d, 999, 0.05, 3) == run_stats.sign_flip_test(d, 999, 3)  # small p: the long draw


def test_metric_differences_are_those_of_the_continual_metrics():
    """Three tasks, run 1's foundation row shifted: every cell of rows 0..3, then Average WER,
    BWT, learning, FWT and g's change, each difference that of continual_metrics."""
    runs = _random_runs(3, shift_row0_of=1)
    table = paired_comparisons(runs, [(0, 1), (0, 2), (1, 2)], n_resamples=200)
    quantities = [r.quantity for r in table[0]]
    assert quantities[-5:] == ["average_wer", "backward_transfer", "learning", "forward_transfer", "general/g"]
    assert len(quantities) == 4 * 4 + 5 and quantities[0] == "foundation: t0"
    for (i, j), results in zip([(0, 1), (0, 2), (1, 2)], table):
        metrics = []
        for run in (runs[i], runs[j]):
            R, G = matrices(run)
            metrics.append(continual_metrics(R[0], {"g": G["g"][0]}))
        by_name = {r.quantity: r for r in results}
        for key in ("average_wer", "backward_transfer", "learning", "forward_transfer"):
            assert by_name[key].difference == pytest.approx(metrics[0][key] - metrics[1][key])
            assert by_name[key].a == pytest.approx(metrics[0][key])
        change = metrics[0]["general"]["g"]["change"] - metrics[1]["general"]["g"]["change"]
        assert by_name["general/g"].difference == pytest.approx(change)


def test_verdicts_follow_each_metric_s_direction():
    """B: 3 more errors per utterance on t0 right after learning it (learned less: learning is
    higher-better) and on g at the end (lost more of g: its change is lower-better); run 2
    shifts row 0 so that g's change is a line of its own. A is better on both."""
    a, _, shifted = _random_runs(3, shift_row0_of=2)
    b_sets = [SetErrors(s.name, s.ids, s.errors.copy(), s.words) for s in a.sets]
    b_sets[0].errors[:, 1] += 3
    b_sets[-1].errors[:, -1] += 3
    b = RunErrors(b_sets[:3], b_sets[3:], a.row_labels)
    by_name = {r.quantity: r for r in paired_comparisons([a, b, shifted], [(0, 1), (0, 2), (1, 2)], n_resamples=200)[0]}
    assert by_name["learning"].difference > 0 and by_name["learning"].verdict == "A better"
    assert by_name["general/g"].difference < 0 and by_name["general/g"].verdict == "A better"
    assert by_name["after t2: t0"].verdict == VERDICT_NONE  # the final cells of tasks are the same


def test_a_metric_weighing_one_compared_cell_is_that_cell_s_line():
    """Two tasks, row 0 shared: FWT is −(after t0: t1) and g's change is (after t1: g), so
    neither is tested twice; with row 0 compared both are lines of their own."""
    shared = [r.quantity for r in paired_comparisons(_random_runs(2, tasks=2), [(0, 1)], n_resamples=100)[0]]
    assert "forward_transfer" not in shared and "general/g" not in shared and "learning" in shared
    shifted = [r.quantity for r in paired_comparisons(_random_runs(2, tasks=2, shift_row0_of=1), [(0, 1)], n_resamples=100)[0]]
    assert "forward_transfer" in shifted and "general/g" in shifted


def test_row_0_is_compared_for_every_pair_when_one_pair_scored_it_differently():
    table = paired_comparisons(_random_runs(3, shift_row0_of=2), [(0, 1), (0, 2), (1, 2)], n_resamples=100)
    for results in table:
        assert results[0].quantity == "foundation: t0"
    assert table[0][0].difference == 0 and table[0][0].verdict == VERDICT_NONE  # runs 0 and 1 share it


def _write(tmp_path, name, seed=0, worse=0):
    _fake_run(tmp_path / name, seed, worse)
    return tmp_path / name


def test_every_pair_of_four_runs_has_one_line_per_quantity(tmp_path):
    folders = [_write(tmp_path, f"x-{name}", seed) for name, seed in (("p", 0), ("q", 1), ("r", 2), ("s", 3))]
    names = ["p", "q", "r", "s"]
    lines = paired_results(folders, names, run_pairs(names))
    per_quantity = Counter(line.result.quantity for line in lines)
    assert set(per_quantity.values()) == {4 * 3 // 2}
    assert {"after b: a", "after b: g", "average_wer"} <= set(per_quantity)
    first = [(line.run_a, line.run_b) for line in lines if line.result.quantity == "after a: a"]
    assert first == [("p", "q"), ("p", "r"), ("p", "s"), ("q", "r"), ("q", "s"), ("r", "s")]
    quantities = [line.result.quantity for line in lines]
    assert quantities == sorted(quantities, key=quantities.index)  # each quantity's lines together


def test_compare_calls_the_better_run_better_and_identical_runs_equal(tmp_path):
    """good and copy are the same run; bad has 3 more errors on every utterance of task a's
    final cell."""
    folders = [_write(tmp_path, "x-good"), _write(tmp_path, "x-bad", worse=3), _write(tmp_path, "x-copy")]
    out = tmp_path / "tables" / "paired.csv"
    result = CliRunner().invoke(app, ["compare", *map(str, folders), "--paired", "--markdown", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    by = {(row["quantity"], row["run A"], row["run B"]): row for row in rows}
    assert by[("after b: a", "good", "bad")]["verdict"] == "A better"
    assert by[("after b: a", "bad", "copy")]["verdict"] == "B better"
    assert by[("average_wer", "good", "bad")]["verdict"] == "A better"
    identical = [row for row in rows if (row["run A"], row["run B"]) == ("good", "copy")]
    assert identical and all(row["verdict"] == VERDICT_NONE and float(row["A - B"]) == 0 for row in identical)
    assert all(float(row["p holm"]) >= float(row["p permutation"]) for row in rows)
    printed = [line for line in result.output.splitlines() if line.startswith("| after b: a | good | bad |")]
    difference = float(by[("after b: a", "good", "bad")]["A - B"])
    assert len(printed) == 1 and f"| {100 * difference:+.2f} [" in printed[0]  # the CSV in fractions, the table in %
    assert f"Holm over all {len(rows)} lines" in result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["paired.csv"]  # written atomically, nothing left beside
    refused = CliRunner().invoke(app, ["compare", *map(str, folders), "--paired", "--csv", str(out.parent)])
    assert refused.exit_code == 2 and "a folder; give the CSV file's name" in refused.output
    assert out.exists()  # the folder is left as it was


def test_against_tests_one_run_against_each_other(tmp_path):
    folders = [_write(tmp_path, "x-good"), _write(tmp_path, "x-bad", worse=3), _write(tmp_path, "x-copy")]
    cli = CliRunner()
    for against in ("copy", str(folders[2])):
        result = cli.invoke(app, ["compare", *map(str, folders), "--paired", "--markdown", "--against", against])
        assert result.exit_code == 0, result.output
        pairs = [line.split(" | ")[1:3] for line in result.output.splitlines() if line.startswith("| after b: a |")]
        assert pairs == [["copy", "good"], ["copy", "bad"]]
    result = cli.invoke(app, ["compare", *map(str, folders), "--paired", "--against", "ihr"])
    assert result.exit_code == 2 and "--against 'ihr' is none of the runs (good, bad, copy)" in result.output
    result = cli.invoke(app, ["compare", *map(str, folders), "--against", "good"])
    assert result.exit_code == 2 and "--against needs --paired" in result.output


def test_only_tests_the_named_quantities_and_corrects_over_them_alone(tmp_path):
    folders = [_write(tmp_path, "x-good"), _write(tmp_path, "x-bad", worse=3), _write(tmp_path, "x-copy")]
    cli = CliRunner()
    result = cli.invoke(app, ["compare", *map(str, folders), "--paired", "--markdown", "--against", "good",
                              "--only", "average_wer", "--only", "after b: a"])
    assert result.exit_code == 0, result.output
    lines = [line.split(" | ")[0:3] for line in result.output.splitlines() if line.startswith("| after b: a |")
             or line.startswith("| average_wer |")]
    assert lines == [["| after b: a", "good", "bad"], ["| after b: a", "good", "copy"],
                     ["| average_wer", "good", "bad"], ["| average_wer", "good", "copy"]]
    assert "Holm over all 4 lines" in result.output
    result = cli.invoke(app, ["compare", *map(str, folders), "--paired", "--only", "bwt"])
    assert result.exit_code == 2 and "no paired quantity named bwt" in " ".join(result.output.split())
    result = cli.invoke(app, ["compare", *map(str, folders), "--only", "learning"])
    assert result.exit_code == 2 and "--only needs --paired" in result.output


def test_runs_of_the_same_name_are_named_by_their_folders(tmp_path):
    folders = [_write(tmp_path / "one", "ft"), _write(tmp_path / "two", "ft", worse=3)]
    result = CliRunner().invoke(app, ["compare", *map(str, folders), "--paired", "--markdown", "--against", str(folders[1])])
    assert result.exit_code == 0, result.output
    assert f"| after b: a | {folders[1]} | {folders[0]} |" in result.output


def test_runs_that_scored_other_utterances_are_refused_naming_the_runs_and_the_set(tmp_path):
    folders = [_write(tmp_path, "x-one"), _write(tmp_path, "x-two", seed=1), _write(tmp_path, "x-three", seed=2)]
    for path in (folders[2] / "hyps").glob("row*/test_b.jsonl"):  # every row alike: the run itself is consistent
        path.write_text(path.read_text().replace('"id": "u3"', '"id": "other"'))
    result = CliRunner().invoke(app, ["compare", *map(str, folders), "--paired"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "paired tests refused" in message and "x-one vs" in message and "x-three" in message
    assert "set 'b': the runs did not score the same utterances" in message
    result = CliRunner().invoke(app, ["compare", *map(str, folders[:2]), "--paired"])
    assert result.exit_code == 0, result.output  # the other two still compare


def test_sweeps_pair_seeds_and_other_seeds_are_refused(tmp_path):
    _fake_sweep(tmp_path / "s-good")
    _fake_sweep(tmp_path / "s-bad", worse=2)
    _fake_sweep(tmp_path / "s-two", seeds=(0, 1))
    folders = [tmp_path / "s-good", tmp_path / "s-bad", tmp_path / "s-two"]
    lines = paired_results(folders[:2], ["good", "bad"], [(0, 1)])
    assert {line.result.quantity: line.result.verdict for line in lines}["after b: a"] == "A better"
    with pytest.raises(ValueError, match=r"s-good and .*s-two are not sweeps of the same seeds \(\[0, 1, 2\] vs \[0, 1\]\)"):
        paired_results(folders, ["good", "bad", "two"], run_pairs(["good", "bad", "two"]))


def test_a_sweep_flips_each_utterance_with_all_its_seeds():
    """Three paired seeds, 40 utterances whose A − B difference is the utterance's own (the
    same on every seed, half of them +, half −: no run is better): the tests see 40 per-utterance
    contributions d_u (seed-means), as one run scored with the seed-mean errors would — not
    120 independent ones, which would call this null difference significant."""
    rng = np.random.default_rng(5)
    n, seeds = 40, 3
    ids, words = tuple(f"u{u}" for u in range(n)), rng.integers(5, 12, n)
    effect = np.resize([3, -3, 2, -2], n)
    a_errors = 4 + rng.integers(0, 2, size=(seeds, 2, n))
    b_errors = a_errors.copy()
    b_errors[:, 1] += effect + rng.integers(0, 2, size=(seeds, n))
    b_errors[:, 0] = a_errors[:, 0]  # the foundation row shared

    swept = {r.quantity: r for r in paired_comparison(_one_task_run(ids, words, a_errors), _one_task_run(ids, words, b_errors), n_resamples=200)}["after a: a"]
    mean = {r.quantity: r for r in paired_comparison(_one_task_run(ids, words, a_errors.mean(0, keepdims=True)),
                                                     _one_task_run(ids, words, b_errors.mean(0, keepdims=True)), n_resamples=200)}
    assert swept.difference == pytest.approx(mean["after a: a"].difference)
    assert swept.p_permutation == mean["after a: a"].p_permutation  # (Wilcoxon: the means' rounding splits ties)
    d_u = (a_errors[:, 1] - b_errors[:, 1]).mean(0) / words.sum()
    assert swept.p_wilcoxon == pytest.approx(scipy_stats.wilcoxon(d_u[d_u != 0], correction=False, method="approx").pvalue)
    assert swept.p_permutation > 0.05 and swept.verdict == VERDICT_NONE
    per_seed = (a_errors[:, 1] - b_errors[:, 1]) / (seeds * words.sum())
    assert run_stats.sign_flip_test(per_seed, 10000, 0) < swept.p_permutation  # what flipping seeds apart would say


def test_a_sweep_s_paired_interval_is_that_of_its_seed_mean_run():
    """Resampling utterances with all their seeds: the interval of a 3-seed sweep lies around
    its difference with the width of the seed-mean run's (the seeds averaged, not summed), at
    the confidence asked for, and the seed of the bootstrap reaches it."""
    rng = np.random.default_rng(8)
    n, seeds = 60, 3
    ids, words = tuple(f"u{u}" for u in range(n)), rng.integers(5, 12, n)
    a_errors = rng.integers(0, 4, size=(seeds, 2, n))
    b_errors = a_errors + np.array([0, 1])[None, :, None] * rng.integers(0, 3, size=(seeds, 1, n))

    def interval(a, b, **options):
        return {r.quantity: r for r in paired_comparison(_one_task_run(ids, words, a), _one_task_run(ids, words, b), n_resamples=2000, **options)}["after a: a"]

    swept, mean = interval(a_errors, b_errors), interval(a_errors.mean(0, keepdims=True), b_errors.mean(0, keepdims=True))
    assert swept.interval[0] < swept.difference < swept.interval[1]
    assert np.allclose(swept.interval, mean.interval, rtol=0.15)
    narrow = interval(a_errors, b_errors, confidence=0.5).interval
    assert swept.interval[0] < narrow[0] < narrow[1] < swept.interval[1]
    assert interval(a_errors, b_errors, seed=7).interval != swept.interval


def test_each_general_set_s_change_is_its_own_set_s():
    """Two general sets: general/<name> is that set's change from the foundation to the end."""
    runs = _random_runs(2, tasks=2, shift_row0_of=1)
    for run in runs:
        second = run.general[0]
        run.general.append(SetErrors("h", second.ids, second.errors[:, :, ::-1].copy() * 2, second.words[::-1].copy()))
    by_name = {r.quantity: r for r in paired_comparisons(runs, [(0, 1)], n_resamples=100)[0]}
    for name in ("g", "h"):
        changes = []
        for run in runs:
            R, G = matrices(run)
            changes.append(continual_metrics(R[0], {k: v[0] for k, v in G.items()})["general"][name]["change"])
        assert by_name[f"general/{name}"].difference == pytest.approx(changes[0] - changes[1])


@pytest.mark.parametrize(("difference", "p_holm", "higher_better", "verdict"), [
    (1.0, 0.01, False, "B better"), (1.0, 0.01, True, "A better"), (-1.0, 0.01, False, "A better"),
    (0.0, 0.001, True, VERDICT_NONE), (1.0, 0.05, True, VERDICT_NONE), (1.0, 0.0499, True, "A better"),
])
def test_verdict_at_its_edges(difference, p_holm, higher_better, verdict):
    """p Holm must be below α (0.05 itself is not), and a zero difference favours nobody."""
    assert run_stats._verdict(difference, p_holm, higher_better, 0.05) == verdict
