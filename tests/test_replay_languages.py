"""ER and joint training replay earlier tasks' utterances: each keeps its own task's language
prompt, not the current task's (an earlier German task replayed while training an English one
is still trained behind <|de|>)."""

from __future__ import annotations

import pytest

from clasr.data.batching import SpeechCollator, utterance_languages
from clasr.data.manifest import DataError, Selection, read_dataset
from clasr.experiment import runner
from clasr.experiment.config import parse_config
from clasr.models.language import language_token_ids
from clasr.models.whisper import tiny_random_multilingual_whisper

from conftest import write_dataset


@pytest.fixture(scope="module")
def multilingual():
    return tiny_random_multilingual_whisper(seed=5)


def test_a_collator_gives_each_utterance_its_own_language(multilingual, tmp_path):
    german, _ = read_dataset(write_dataset(tmp_path / "de", n_train=3, seed=1), Selection(split="train"))
    english, _ = read_dataset(write_dataset(tmp_path / "en", n_train=3, seed=2), Selection(split="train"))
    languages = utterance_languages([("de_task", "de", german), ("en_task", "en", english)])
    collator = SpeechCollator(multilingual.feature_extractor, multilingual.tokenizer, multilingual.window_frames,
                              language="en", languages=languages)
    batch = collator([english[0], german[0], german[1], english[1]], [0, 1, 2, 3])
    ids = language_token_ids(multilingual.tokenizer)
    assert batch.decoder_input_ids[:, 1].tolist() == [ids["en"], ids["de"], ids["de"], ids["en"]]
    first = multilingual.tokenizer.encode(" " + german[0].text, add_special_tokens=False)
    assert batch.labels[1, 3 : 3 + len(first)].tolist() == first  # the prompt stays unscored, the text scored


def test_one_utterance_in_two_tasks_of_different_languages_is_refused(tmp_path):
    utterances, _ = read_dataset(write_dataset(tmp_path / "set", n_train=2), Selection(split="train"))
    with pytest.raises(DataError, match=r"row \d+\) is in task 'a' \(language de\) and in task 'b' \(language fr\)"):
        utterance_languages([("a", "de", utterances), ("b", "fr", utterances)])
    assert utterance_languages([("a", "de", utterances), ("b", "de", utterances)]) == dict.fromkeys(utterances, "de")


@pytest.mark.parametrize("strategy", [{"name": "er", "memory_size": 100}, {"name": "joint"}])
def test_replayed_utterances_train_with_their_own_tasks_language(strategy, multilingual, tmp_path, monkeypatch, one_thread):
    folder = tmp_path / "model"
    multilingual.model.save_pretrained(folder)
    multilingual.tokenizer.save_pretrained(folder)
    multilingual.feature_extractor.save_pretrained(folder)
    data = {lang: write_dataset(tmp_path / lang, n_train=4, n_test=1, seed=seed) for lang, seed in (("de", 1), ("en", 2))}
    config = parse_config({
        "output_dir": str(tmp_path / "run"), "model": {"name": str(folder), "window_seconds": 2},
        "train": {"max_steps": 1, "batch_size": 8, "learning_rate": 1e-4},
        "evaluation": {"engine": "torch", "batch_size": 4},
        "strategy": strategy,
        "tasks": [{"name": f"{lang}_task", "data": str(path), "language": lang,
                   "train": {"split": "train"}, "test": {"split": "test"}} for lang, path in data.items()],
    })
    trained = []
    real_train_task = runner.train_task

    def spy(model, utterances, collator, *args, **kwargs):
        trained.append(collator(list(utterances), list(range(len(utterances)))).decoder_input_ids[:, 1].tolist())
        trained.append([str(u.audio_path.parent.parent.name) for u in utterances])
        return real_train_task(model, utterances, collator, *args, **kwargs)

    monkeypatch.setattr(runner, "train_task", spy)
    runner.run_experiment(config)
    ids = language_token_ids(multilingual.tokenizer)
    first_tokens, first_sets, second_tokens, second_sets = trained
    assert first_sets == ["de"] * 4 and first_tokens == [ids["de"]] * 4
    assert sorted(second_sets) == ["de"] * 4 + ["en"] * 4  # task 2 replays all of task 1
    assert second_tokens == [ids[lang] for lang in second_sets]
