"""The shipped example configs stay valid, and the bundled mini sets stay readable."""

from pathlib import Path

import pytest

from clasr.data.manifest import read_dataset
from clasr.experiment.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["an4_then_arctic_mini.yaml", "an4_then_arctic.yaml"])
def test_example_configs_validate(name):
    config = load_config(EXAMPLES / name)
    assert [t.name for t in config.tasks] == ["an4", "arctic"]


def test_demo_sets_are_bundled_and_clean():
    config = load_config(EXAMPLES / "an4_then_arctic_mini.yaml")
    for task in config.tasks:
        for selection in (task.train, task.test):
            utts, report = read_dataset(task.data, selection)
            assert utts and not report.bad_rows
    general = config.general[0]
    general_ids = {u.id for u in read_dataset(general.data, general.test)[0]}
    arctic = config.tasks[1]
    assert general_ids.isdisjoint(u.id for u in read_dataset(arctic.data, arctic.test)[0])


def test_example_benchmark_spec_validates():
    import yaml

    from clasr.bench.spec import BenchmarkSpec

    spec = BenchmarkSpec.model_validate(yaml.safe_load((EXAMPLES / "bench_spec.yaml").read_text()))
    assert [d.name for d in spec.domains] == ["welsh_phone", "fast_kids"] and spec.general[0].name == "clean"
