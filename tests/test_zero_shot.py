"""The converted tiny.en on real speech: zero-shot WER within 1.5 points of the measured figures.

Reference figures (../shared/notes/forgetting-probe.md, measured before this project with the
same normalizer): AN4 test 40.7 %, CMU ARCTIC test (first 150 prompts) 3.6 %.
"""

import pytest

from clasr.data.manifest import Selection, read_dataset
from clasr.evaluate import evaluate
from clasr.models.whisper import load_whisper
from conftest import require_shared_data

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def tiny_en():
    return load_whisper("tiny.en")


@pytest.mark.parametrize(
    "dataset,selection,expected",
    [("an4", Selection(split="test"), 0.407), ("arctic_kathleen", Selection(split="test", max_utterances=150), 0.036)],
)
def test_zero_shot_wer_matches_the_probe(tiny_en, dataset, selection, expected):
    utts, report = read_dataset(require_shared_data(dataset), selection)
    assert not report.bad_rows
    result = evaluate(tiny_en, utts, batch_size=16)
    assert abs(result.score.wer - expected) <= 0.015, result.score
    assert result.token_limit_hits == 0
