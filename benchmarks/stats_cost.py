"""Cost of clasr's statistics on a demo-sized sweep (3 tasks × 32 test utterances, general 48 and
real 50, 4 rows, 3 seeds) with synthetic errors: intervals (1000 replicates), one paired comparison
and the all-pairs table of four runs (`clasr compare A B C D --paired`).

    .venv/bin/python benchmarks/stats_cost.py
"""
import time
import numpy as np
from clasr.metrics.run_stats import RunErrors, SetErrors, intervals, paired_comparison, paired_comparisons

rng = np.random.default_rng(0)
def run(seeds):
    sets = []
    for name, n in (("caribbean", 32), ("telephone", 32), ("child", 32), ("general", 48), ("real", 50)):
        words = np.random.default_rng(n + len(name)).integers(4, 20, n)
        sets.append(SetErrors(name, tuple(map(str, range(n))), rng.binomial(words, 0.1, size=(seeds, 4, n)), words))
    return RunErrors(sets[:3], sets[3:], ("foundation", "after caribbean", "after telephone", "after child"))
for seeds in (1, 3):
    a, b = run(seeds), run(seeds)
    t = time.perf_counter(); intervals(a, 1000); t1 = time.perf_counter() - t
    t = time.perf_counter(); lines = len(paired_comparison(a, b)); t2 = time.perf_counter() - t
    four = [a, b, run(seeds), run(seeds)]
    t = time.perf_counter(); table = paired_comparisons(four, [(i, j) for i in range(4) for j in range(i + 1, 4)]); t3 = time.perf_counter() - t
    print(f"seeds {seeds}: intervals (1000 replicates) {t1:.2f} s; paired comparison (2000 bootstrap, {lines} lines) {t2:.2f} s; "
          f"every pair of 4 runs ({sum(map(len, table))} lines) {t3:.2f} s")
