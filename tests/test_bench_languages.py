"""Other languages in the built-in benchmark: Spanish, German and French sentences for held-out
general sets, Spanish–English and Mandarin–English code-switched sentences spoken with SSML (each
language by its own eSpeak NG voice), reproducible generation, scoring by the mixed error rate,
and the multilingual demo's configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clasr.bench.default import (
    CODE_SWITCHED_DOMAIN,
    LANGUAGE_GENERAL_DOMAINS,
    MANDARIN_ENGLISH_DOMAIN,
    MULTILINGUAL_DEMO_EXPERIMENT,
    MULTILINGUAL_DEMO_RUNS,
    MULTILINGUAL_DEMO_SPEC,
)
from clasr.bench.demo import demo_config
from clasr.bench.generate import make_benchmark
from clasr.bench.language_data import LANGUAGE_TOPICS, plain_text, ssml
from clasr.bench.sentences import generate_sentences, topic_language
from clasr.bench.spec import BenchmarkSpec, DomainSpec
from clasr.bench.voices import Voice, VoiceError, synthesize
from clasr.metrics.text import whisper_basic_normalize
from clasr.metrics.wer import corpus_score, mixed_units, score_utterance

# letters of any script (no digits, no underscore), spaces, apostrophes, commas; one final period
WRITTEN = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ ',])*[^\W\d_]\.$")
# Chinese: CJK characters and Latin words, a space only inside an English phrase, full-width
# commas, one final full stop
HAN = "\u4e00-\u9fff"
WRITTEN_CHINESE = re.compile(rf"^[{HAN}A-Za-z](?:[{HAN}A-Za-z]|(?<=[A-Za-z]) (?=[A-Za-z])|(?<=[{HAN}A-Za-z])，)*。$")
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("topic", LANGUAGE_TOPICS)
def test_sentences_follow_the_writing_rules_and_are_reproducible(topic):
    sentences = generate_sentences(topic, 60, seed=3)
    assert len(set(sentences)) == 60 and sentences == generate_sentences(topic, 60, seed=3)
    written = WRITTEN_CHINESE if topic_language(topic) == "zh" else WRITTEN
    for sentence in sentences:
        text = plain_text(sentence)
        assert written.match(text) and "  " not in text and not re.search(r",(?! )", text), text
        assert "<" not in text and ">" not in text
    assert generate_sentences(topic, 10, seed=3) == sentences[:10]  # prefix-stable
    assert topic_language(topic) == LANGUAGE_TOPICS[topic]


def test_code_switched_markup_by_hand():
    sentence = "Mañana tengo un <en>meeting</en> con el <en>manager</en>."
    assert plain_text(sentence) == "Mañana tengo un meeting con el manager."
    assert ssml(sentence) == ('<speak>Mañana tengo un <voice xml:lang="en">meeting</voice> con el '
                              '<voice xml:lang="en">manager</voice>.</speak>')
    assert all("<en>" in s for s in generate_sentences("spanglish", 20, seed=0))  # every sentence switches
    assert topic_language("home") == "en"


def test_mandarin_english_markup_and_its_mixed_units_by_hand():
    sentence = "我今天真的很<en>busy</en>，没空看那个<en>report</en>。"
    text = plain_text(sentence)
    assert text == "我今天真的很busy，没空看那个report。"
    assert ssml(sentence) == ('<speak>我今天真的很<voice xml:lang="en">busy</voice>，没空看那个'
                              '<voice xml:lang="en">report</voice>。</speak>')
    assert mixed_units(whisper_basic_normalize(text)) == [*"我今天真的很", "busy", *"没空看那个", "report"]
    # a hypothesis with the English word in another case and "report" translated (报告): one
    # substitution (report → 报) and one insertion (告) over 13 units; CER without spaces counts
    # the six letters of "report" as errors instead
    score, _, _ = score_utterance(text, "我今天真的很Busy，没空看那个报告", whisper_basic_normalize)
    assert (score.ref_mixed, score.mixed_errors) == (13, 2)
    assert corpus_score([score]).mer == pytest.approx(2 / 13)
    assert (score.ref_chars_nospace, score.char_errors_nospace) == (21, 6)
    sentences = generate_sentences("mandarin_english", 40, seed=0)
    assert all("<en>" in s for s in sentences) and topic_language("mandarin_english") == "zh"


def test_ssml_switches_the_voice_inside_a_sentence():
    voice = Voice(engine="espeak", name="es+m3")
    sentence = "Mañana tengo un <en>meeting</en> con el <en>manager</en>."
    plain, rate = synthesize(voice, plain_text(sentence))
    switched, _ = synthesize(voice, ssml(sentence))
    assert rate > 0 and len(switched) != len(plain)  # the English words are read by the English voice
    with pytest.raises(VoiceError, match="hibari .* cannot read SSML"):
        synthesize(Voice(engine="hibari", name="heart"), ssml(sentence))


def test_code_switched_domains_generate_reproducibly(tmp_path):
    domain = DomainSpec(name="cs", description="code-switched", topic="spanglish",
                        voices=(Voice(engine="espeak", name="es+m3"), Voice(engine="espeak", name="es+f4")),
                        train=3, dev=0, test=2)
    mandarin = DomainSpec(name="zh_en", description="code-switched", topic="mandarin_english",
                          voices=(Voice(engine="espeak", name="cmn+m3"), Voice(engine="espeak", name="cmn+f4")),
                          train=2, dev=0, test=2)
    general = DomainSpec(name="de", description="German", topic="german",
                         voices=(Voice(engine="espeak", name="de+m1"),), train=0, test=2)
    spec = BenchmarkSpec(domains=(domain, mandarin), general=(general,))
    first, second = make_benchmark(spec, tmp_path / "a"), make_benchmark(spec, tmp_path / "b")
    for a, b in zip(first, second):
        rows = Path(a.folder, "metadata.jsonl").read_text(encoding="utf-8")
        assert rows == Path(b.folder, "metadata.jsonl").read_text(encoding="utf-8")
        for row in map(json.loads, rows.splitlines()):
            assert Path(a.folder, row["file_name"]).read_bytes() == Path(b.folder, row["file_name"]).read_bytes()
    rows = [json.loads(line) for line in Path(first[0].folder, "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["language"] for r in rows} == {"es"} and not any("<" in r["text"] for r in rows)
    assert [r["text"] for r in rows] == [plain_text(s) for s in generate_sentences("spanglish", 5, seed=_seed(spec, domain))]
    rows = [json.loads(line) for line in Path(first[1].folder, "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["language"] for r in rows} == {"zh"}
    assert [r["text"] for r in rows] == [plain_text(s) for s in generate_sentences("mandarin_english", 4, seed=_seed(spec, mandarin))]
    for row in rows:  # read as Mandarin (≈ 0.33 s a unit); an English voice spells each character (≈ 0.7 s)
        assert 0.15 < row["duration"] / len(mixed_units(whisper_basic_normalize(row["text"]))) < 0.5, row


def _seed(spec: BenchmarkSpec, domain: DomainSpec) -> int:
    import zlib

    from clasr.bench.generate import _int_seed

    return _int_seed([spec.seed, zlib.crc32(domain.name.encode())])


def test_code_switched_sets_are_scored_by_the_mixed_error_rate(tmp_path):
    spec = BenchmarkSpec(domains=(CODE_SWITCHED_DOMAIN, MANDARIN_ENGLISH_DOMAIN), general=MULTILINGUAL_DEMO_SPEC.general)
    folders = {d.name: tmp_path / d.name for d in spec.all_domains()}
    config = demo_config(spec, folders, "ft", tmp_path, MULTILINGUAL_DEMO_EXPERIMENT, runs=MULTILINGUAL_DEMO_RUNS)
    assert [(t.name, t.language, t.metric) for t in config.tasks] == [
        ("spanglish", "es", "mer"), ("mandarin_english", "zh", "mer")]
    assert [(g.language, g.metric) for g in config.general] == [(None, None), ("es", None), ("de", None), ("fr", None)]


def test_the_code_switching_example_spec_holds_the_built_in_domains():
    from clasr.cli import _benchmark_spec

    spec = _benchmark_spec(REPO / "examples" / "bench_code_switching.yaml", MULTILINGUAL_DEMO_SPEC)
    assert spec.domains == (CODE_SWITCHED_DOMAIN, MANDARIN_ENGLISH_DOMAIN)
    assert spec.general[1:] == LANGUAGE_GENERAL_DOMAINS


def test_the_multilingual_demo_runs_each_set_in_its_language(tmp_path):
    folders = {d.name: tmp_path / d.name for d in MULTILINGUAL_DEMO_SPEC.all_domains()}
    configs = {name: demo_config(MULTILINGUAL_DEMO_SPEC, folders, name, tmp_path, MULTILINGUAL_DEMO_EXPERIMENT,
                                 runs=MULTILINGUAL_DEMO_RUNS) for name in MULTILINGUAL_DEMO_RUNS}
    lora = configs["lora"]
    assert [(t.name, t.language) for t in lora.tasks] == [("caribbean", None), ("spanglish", "es")]
    assert [(g.name, g.language) for g in lora.general] == [
        ("general", None), ("spanish", "es"), ("german", "de"), ("french", "fr")]
    assert lora.model.name == "base" and lora.adapter is not None and lora.train.learning_rate == 1e-3
    assert configs["centralize"].strategy.name == "centralize" and configs["centralize"].adapter is not None
    assert configs["ft"].adapter is None and configs["ft"].train.learning_rate == 3e-5
    assert configs["ihr"].strategy.name == "ihr" and configs["ihr"].train.epochs == 1


@pytest.mark.slow
def test_a_small_multilingual_demo_runs_end_to_end(tmp_path, one_thread):
    """The multilingual demo's runs (ft, lora, centralize, ihr) on a tiny random multilingual
    Whisper and a small code-switched task with a German general set: every run finishes, shares
    the foundation row, and decodes the general set in German."""
    from clasr.bench.demo import run_demo, write_report
    from clasr.models.whisper import tiny_random_multilingual_whisper

    bundle = tiny_random_multilingual_whisper(seed=3, window_seconds=8.0)
    folder = tmp_path / "model"
    for part in (bundle.model, bundle.tokenizer, bundle.feature_extractor):
        part.save_pretrained(folder)
    spec = BenchmarkSpec(
        domains=(DomainSpec(name="cs", description="code-switched", topic="spanglish",
                            voices=(Voice(engine="espeak", name="es+m3"),), train=4, test=2),),
        general=(DomainSpec(name="de", description="German", topic="german",
                            voices=(Voice(engine="espeak", name="de+m1"),), train=0, test=2),),
    )
    settings = {**MULTILINGUAL_DEMO_EXPERIMENT, "model": {"name": str(folder), "window_seconds": 8.0},
                "train": {**MULTILINGUAL_DEMO_EXPERIMENT["train"], "batch_size": 4},
                "evaluation": {"batch_size": 4, "engine": "torch", "limits": {"max_new_tokens": 4}}}
    runs = run_demo(tmp_path / "demo", tuple(MULTILINGUAL_DEMO_RUNS), spec, tmp_path / "cache", settings,
                    runs_by_name=MULTILINGUAL_DEMO_RUNS)
    assert [r.name for r in runs] == ["ft", "lora", "centralize", "ihr"] and all(r.metrics["complete"] for r in runs)
    assert all(r.matrix["general_wer"]["de"][0] == runs[0].matrix["general_wer"]["de"][0] for r in runs)
    rows = [json.loads(line) for line in (tmp_path / "demo" / "lora" / "hyps" / "row1" / "general_de.jsonl").read_text().splitlines()]
    assert {row["language"] for row in rows} == {"de"}
    report = write_report(runs, spec, tmp_path / "demo", settings)
    assert "adapted domain after domain" in (report / "README.md").read_text()


def test_an_unknown_demo_preset_is_refused_naming_the_presets(tmp_path):
    from typer.testing import CliRunner

    from clasr.cli import app

    outcome = CliRunner().invoke(app, ["demo", "--preset", "klingon", "--output", str(tmp_path)])
    assert outcome.exit_code == 2 and "--preset: 'klingon' is not one of english, multilingual" in outcome.output
