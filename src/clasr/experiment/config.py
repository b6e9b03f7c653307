"""The experiment configuration: one YAML file, validated by pydantic.

Every error names the file, the key path (``tasks.0.train.max_utterances``) and what was
expected. Data folders are resolved relative to the config file; the output directory
relative to the working directory.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from clasr.adapters import AdapterConfig
from clasr.data.manifest import Selection
from clasr.decoding import DecodeLimits
from clasr.engines import DEFAULT_ENGINE, ComputeType, Engine
from clasr.guard import GUARD_MODES, GuardConfig
from clasr.metrics.text import check_normalizer
from clasr.metrics.wer import check_metric
from clasr.models.language import check_language_code
from clasr.strategies import StrategyConfig
from clasr.strategies.centralize import paper_preset
from clasr.strategies.ft import FineTuneConfig
from clasr.tracking import TrackingConfig
from clasr.train import TrainConfig


class ConfigError(ValueError):
    """An invalid experiment configuration (message names the file and key)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


NormalizerName = Annotated[str, AfterValidator(check_normalizer)]
Language = Annotated[str, AfterValidator(check_language_code)]
MetricName = Annotated[str, AfterValidator(check_metric)]
LANGUAGE_HELP = "ISO code (en, de, zh, …) forced in the prompt, or auto (detected per utterance); default: evaluation's"
METRIC_HELP = "headline rate: wer, cer, cer_nospace or mer; default by language (cer_nospace for zh, ja, th, …)"


class ModelConfig(_Strict):
    name: str = Field("tiny.en", description="built-in name (tiny.en) or a local transformers Whisper folder")
    window_seconds: float = Field(30.0, gt=0, le=30, description="encoder window, whole seconds (30 = Whisper's own)")

    @field_validator("window_seconds")
    @classmethod
    def _whole_seconds(cls, seconds: float) -> float:
        if not float(seconds).is_integer():
            raise ValueError(
                f"{seconds:g} s is not a whole number of seconds; the exported model's feature extractor "
                "(transformers' chunk_length) can only describe whole seconds"
            )
        return seconds


class TaskConfig(_Strict):
    """A task: a dataset folder and its train / test (/ dev) selections."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    data: Path
    train: Selection
    test: Selection
    dev: Selection | None = None
    lowercase_targets: bool = Field(False, description="lower-case transcripts used as training targets")
    normalizer: NormalizerName | None = Field(None, description="scoring normalizer for this task; default: evaluation's")
    language: Language | None = Field(None, description=LANGUAGE_HELP)
    metric: MetricName | None = Field(None, description=METRIC_HELP)


class GeneralSetConfig(_Strict):
    """A held-out set measuring what the foundation model could already do."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    data: Path
    test: Selection
    dev: Selection | None = Field(None, description="what the guard scores during training (keep it disjoint from test)")
    normalizer: NormalizerName | None = None
    language: Language | None = Field(None, description=LANGUAGE_HELP)
    metric: MetricName | None = Field(None, description=METRIC_HELP)


class EvaluationConfig(_Strict):
    batch_size: int = Field(16, ge=1)
    normalizer: NormalizerName = Field("whisper_english", description="of English sets; other languages: whisper_basic")
    language: Language | None = Field(None, description="default language of every set (null: en)")
    limits: DecodeLimits = DecodeLimits()
    engine: Engine = Field(
        DEFAULT_ENGINE, description="auto (ctranslate2 on a CPU, torch on a GPU), ctranslate2 (same greedy tokens in float32) or torch"
    )
    compute_type: ComputeType = Field(
        "float32", description="ctranslate2 only (another than float32 makes auto ctranslate2); int8 costs WER"
    )

    @model_validator(mode="after")
    def _compute_type_needs_ctranslate2(self) -> "EvaluationConfig":
        if self.engine == "torch" and self.compute_type != "float32":
            raise ValueError(f"compute_type {self.compute_type} is a CTranslate2 setting; with engine torch use float32")
        return self


class DataConfig(_Strict):
    strict: bool = Field(False, description="stop at the first bad row instead of skipping and reporting it")


class ExperimentConfig(_Strict):
    """A continual-learning run: a model adapted to ``tasks`` in order with one strategy."""

    name: str = "experiment"
    output_dir: Path = Path("results/experiment")
    seed: int = 0
    model: ModelConfig = ModelConfig()
    strategy: StrategyConfig = FineTuneConfig()
    adapter: AdapterConfig | None = Field(None, description="train a fresh adapter per task, merged after it")
    train: TrainConfig = TrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    data: DataConfig = DataConfig()
    tasks: list[TaskConfig] = Field(min_length=1)
    general: list[GeneralSetConfig] = []
    guard: GuardConfig | None = Field(None, description="general-ability guard during training; off (null) by default")
    tracking: TrackingConfig | None = Field(None, description="experiment trackers (TensorBoard, MLflow, W&B); off (null) by default")

    @model_validator(mode="before")
    @classmethod
    def _strategy_preset(cls, data: Any) -> Any:
        """``strategy: {name: centralize, preset: paper}`` fills in the paper's settings."""
        return paper_preset(data) if isinstance(data, dict) else data

    @field_validator("tasks", "general")
    @classmethod
    def _unique_names(cls, sets: list) -> list:
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {names}")
        return sets

    @field_validator("guard", mode="before")
    @classmethod
    def _guard_shorthand(cls, value: Any) -> Any:
        """``guard: off | warn | stop | rollback``; off (YAML reads a bare ``off`` as false) is no guard."""
        if value is False or value == "off" or (isinstance(value, dict) and value.get("mode") in (False, "off")):
            return None
        if isinstance(value, str):
            if value not in GUARD_MODES:
                raise ValueError(f"unknown guard mode {value!r}; expected one of {', '.join(GUARD_MODES)}")
            return {"mode": value}
        return value

    @model_validator(mode="after")
    def _guarded_sets_have_a_dev(self) -> "ExperimentConfig":
        if self.guard is None:
            return self
        with_dev = [g.name for g in self.general if g.dev is not None]
        unknown = [name for name in self.guard.sets or [] if name not in with_dev]
        if unknown:
            raise ValueError(
                f"guard.sets: {', '.join(unknown)} not among the general sets with a dev selection ({with_dev or 'none'})"
            )
        if self.guard.anchor is not None and "anchor" in [g.name for g in self.guarded_sets()]:
            raise ValueError("guard.anchor: a guarded general set is already named 'anchor'; rename it")
        if not self.guarded_sets() and self.guard.anchor is None:
            hint = ("guard.sets: [] names no general set;" if self.guard.sets == []
                    else "add general.<i>.dev to a general set, or")
            raise ValueError(f"guard: nothing to score; {hint} name data of your own as guard.anchor")
        return self

    @model_validator(mode="after")
    def _guard_loss_in_a_named_language(self) -> "ExperimentConfig":
        if self.guard is None or self.guard.signal != "loss":
            return self
        auto = [f"general.{i}.language" for i, general in enumerate(self.general)
                if general in self.guarded_sets() and self.set_language(general.language) == "auto"]
        if self.guard.anchor is not None and self.set_language(self.guard.anchor.language) == "auto":
            auto.append("guard.anchor.language")
        if auto:
            raise ValueError(
                f"guard.signal: loss scores each guarded set's transcripts under its language's prompt; "
                f"name the language of {', '.join(auto)} (not 'auto')"
            )
        return self

    def guarded_sets(self) -> list[GeneralSetConfig]:
        """The general sets whose dev selection the guard scores (none when the guard is off;
        every one with a dev unless ``guard.sets`` names them; ``[]`` names none)."""
        if self.guard is None:
            return []
        names = self.guard.sets if self.guard.sets is not None else [g.name for g in self.general if g.dev is not None]
        return [g for g in self.general if g.name in names]

    def anchor_sets(self) -> list[tuple[str, Path, Selection, str | None]]:
        """The sets an ``anchor`` of the strategy (IHR) names — (name, folder, selection, language):
        every general set's dev selection (``anchor: general``), or the named data (``anchor``
        as the set itself); none without an anchor."""
        anchor = getattr(self.strategy, "anchor", None)
        if anchor == "general":
            return [(g.name, g.data, g.dev, g.language) for g in self.general if g.dev is not None]
        if anchor is not None:
            return [("anchor", anchor.data, anchor.selection(), anchor.language)]
        return []

    @model_validator(mode="after")
    def _general_anchor_has_a_dev(self) -> "ExperimentConfig":
        if getattr(self.strategy, "anchor", None) == "general" and not self.anchor_sets():
            raise ValueError("strategy.anchor: general, but no general set has a dev selection; add general.<i>.dev")
        return self

    def set_language(self, language: str | None) -> str:
        """The language of a set whose own ``language`` is ``language`` (evaluation's, else en)."""
        return language or self.evaluation.language or "en"

    @model_validator(mode="after")
    def _tasks_train_in_a_named_language(self) -> "ExperimentConfig":
        auto = [f"tasks.{i}.language" for i, task in enumerate(self.tasks) if self.set_language(task.language) == "auto"]
        if auto:
            raise ValueError(
                f"{', '.join(auto)}: auto, but a task's training targets carry its language in the prompt; "
                "name the language (auto is for general sets and clasr eval)"
            )
        return self

    @model_validator(mode="after")
    def _centralize_needs_an_adapter(self) -> "ExperimentConfig":
        if self.strategy.name == "centralize" and self.adapter is None:
            raise ValueError("strategy 'centralize' averages adapter updates: add an adapter section")
        if self.strategy.name == "frozen" and self.adapter is not None:
            raise ValueError("strategy 'frozen' chooses what trains; with an adapter section the adapters do")
        return self

    def resolved(self, base: Path) -> "ExperimentConfig":
        """A copy whose data folders are absolute (relative ones taken from ``base``)."""
        tasks = [t.model_copy(update={"data": (base / t.data).resolve()}) for t in self.tasks]
        general = [g.model_copy(update={"data": (base / g.data).resolve()}) for g in self.general]
        strategy = self.strategy
        if getattr(strategy, "anchor", None) not in (None, "general"):  # IHR's anchor data folder
            anchor = strategy.anchor.model_copy(update={"data": (base / strategy.anchor.data).resolve()})
            strategy = strategy.model_copy(update={"anchor": anchor})
        guard = self.guard
        if guard is not None and guard.anchor is not None:  # the guard's anchor data folder
            guard = guard.model_copy(update={"anchor": guard.anchor.model_copy(update={"data": (base / guard.anchor.data).resolve()})})
        return self.model_copy(update={"tasks": tasks, "general": general, "strategy": strategy, "guard": guard})

    def to_plain(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def format_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem: ``source: key.path: message (got value)``."""
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        got = f" (got {item['input']!r})" if "input" in item and not isinstance(item["input"], dict) else ""
        lines.append(f"{source}: {path}: {item['msg']}{got}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config") -> ExperimentConfig:
    """Validate a plain mapping; raise :class:`ConfigError` naming each bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(source, error)) from None
    plain = config.model_dump()
    infinite = non_finite_keys(plain)
    if infinite:
        raise ConfigError("\n".join(f"{source}: {k}: must be a finite number (got {_lookup(plain, k)})" for k in infinite))
    return config


def _lookup(plain: dict, path: str) -> Any:
    node: Any = plain
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each dotted key path set (``train.learning_rate`` → data["train"]
    ["learning_rate"]; a number picks an item of a list: ``tasks.0.train.max_utterances``),
    creating sections that are missing or null; ConfigError when a path runs through a value
    that is not a section, or names a list item that does not exist."""
    result = copy.deepcopy(data)
    for path, value in overrides.items():
        *sections, key = path.split(".")
        node = result
        for depth, section in enumerate(sections):
            where = ".".join(sections[: depth + 1])
            if isinstance(node, list):
                node = node[_list_index(node, section, path, where)]
            else:
                if node.get(section) is None:  # missing, or an optional section left empty (adapter: null)
                    node[section] = {}
                node = node[section]
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"override {path}: {where} is not a section")
        if isinstance(node, list):
            node[_list_index(node, key, path, path)] = value
        else:
            node[key] = value
    return result


def _list_index(items: list, section: str, path: str, where: str) -> int:
    """The list position that a key path's ``section`` names (``tasks.0``)."""
    if not section.isdigit() or int(section) >= len(items):
        raise ConfigError(
            f"override {path}: {where} must name an item of a list of {len(items)} (0 to {len(items) - 1})"
        )
    return int(section)


def non_finite_keys(value: Any, path: str = "") -> list[str]:
    """Key paths of a plain config whose value is a NaN or infinite float."""
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in non_finite_keys(item, f"{path}.{key}" if path else str(key))]
    if isinstance(value, list):
        return [k for i, item in enumerate(value) for k in non_finite_keys(item, f"{path}.{i}")]
    return [path] if isinstance(value, float) and not math.isfinite(value) else []


def load_config(
    path: str | Path, overrides: dict[str, Any] | None = None, strategy: str | None = None
) -> ExperimentConfig:
    """Read, override and validate a YAML config; data paths made absolute.

    ``strategy`` replaces the config's strategy section by ``{name: strategy}`` unless the
    config already names that strategy (then its options are kept); ``overrides`` (dotted
    key paths, see :func:`apply_overrides`) apply after that, so they can set the new
    strategy's options."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if isinstance(data, dict):
        current = data.get("strategy")
        if strategy is not None and not (isinstance(current, dict) and current.get("name") == strategy):
            data = {**data, "strategy": {"name": strategy}}
        data = apply_overrides(data, overrides or {})
    return parse_config(data, str(path)).resolved(path.parent)
