"""The continual-learning runner: config → task sequence × strategy → results directory.

Row 0 of the WER matrix scores the untouched model on every task's test set and every
general set; then for each task t the model is trained on task t, the strategy turns θ̃_t
into θ_t, and every set is scored again (row t). Each finished row is committed
atomically with the weights (:mod:`clasr.experiment.checkpoint`), so running the same
config on the same directory again resumes after the last finished row.

:func:`run_experiment` reads as its steps (``_run``): check the folder against the config;
start or resume (model, strategy, screened sets, the last committed row's weights and
strategy state, or a reused foundation row); for each row still to do, train a task
(:func:`run_task`: the strategy's hooks around the one training loop, with the task's
adapters and guard) and score and commit the row (with the results and timings files); finish
(the exported model).
"""

from __future__ import annotations

import copy
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed

from clasr.adapters import extra_loss as adapter_extra_loss
from clasr.adapters.session import task_adapters, training_set
from clasr.atomic import atomic_path, remove_orphans, write_json, write_text
from clasr.data.batching import SpeechCollator, utterance_languages
from clasr.distributed import is_main_process, process_state, require_full_parameters
from clasr.evaluate import evaluate, write_hypotheses
from clasr.experiment.checkpoint import RunState, commit, commit_bytes, load_state, restore
from clasr.experiment.disk import model_bytes, require_free_space
from clasr.experiment.lock import run_lock
from clasr.experiment.screening import screen_sets
from clasr.experiment.config import ConfigError, ExperimentConfig, parse_config
from clasr.experiment.sets import ExperimentSets, load_sets
from clasr.guard import GuardedSet, LossScorer, Scorer, TaskGuard
from clasr.models.errors import ModelError
from clasr.models.language import AUTO, prompt_language
from clasr.models.whisper import WhisperBundle, load_whisper, windowed_feature_extractor
from clasr.progress import console
from clasr.reference_loss import reference_loss
from clasr.report.general_alarm import general_losses
from clasr.report.guard import write_guard
from clasr.report.results import write_results
from clasr.report.utterance_errors import UtteranceErrorsError
from clasr.strategies import Strategy, build_strategy
from clasr.strategies.base import TaskContext
from clasr.tracking import accelerator_options, end_run, log_row, start_run
from clasr.train import train_task


# Config keys that do not change results: a run may resume with other values.
# evaluation.engine: both engines give the same greedy tokens in float32 (tests/test_engines.py);
# compute_type, which can change them, is compared. train.gradient_checkpointing: the same loss and
# gradients (tests/test_train_speed_options.py), so a run that ran out of memory resumes with it on.
RESULT_NEUTRAL_KEYS = (
    "output_dir", "train.num_workers", "tracking", "tracking.log_with", "tracking.project", "evaluation.engine",
    "train.gradient_checkpointing",
)


def _differences(old, new, path: str = "") -> list[str]:
    """Key paths where two plain configs differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{path}.{k}" if path else k)]
    return [] if old == new else [path or "(top level)"]


def _result_differences(old: dict, new: dict) -> list[str]:
    """Key paths where two plain configs differ in a way that can change results."""
    return [d for d in _differences(old, new) if d not in RESULT_NEUTRAL_KEYS]


def check_output_dir(config: ExperimentConfig, state: RunState) -> None:
    """Refuse to continue a run of another config in the same directory.

    Only a directory with finished rows is bound to its config (``output_dir`` itself is
    not compared, so a moved directory still resumes); one where nothing was committed yet
    is simply taken over by the new config. The stored config is read as the current code
    reads it, so keys added to clasr since the run started count at their defaults.
    """
    if not state.rows_done:
        return
    diff = _result_differences(_with_current_defaults(state.config), config.to_plain())
    if diff:
        older = [f"{section}.{key}: {value}" for (section, _, key), value in BEHAVIOUR_BEFORE_KEY.items()
                 if f"{section}.{key}" in diff and key not in (state.config.get(section) or {})]
        hint = f" (it started before these keys existed and ran as {', '.join(older)}; set that to resume)" if older else ""
        raise ConfigError(
            f"{config.output_dir} holds a run of a different config (differs at: {', '.join(diff)}){hint}; "
            "use another output_dir, or delete the directory to start over"
        )


# Keys added with a default that behaves differently from what runs started before them did:
# (section, its type, key) → the value those runs had. A stored config without the key is read
# with that value, so resuming it under the new default is refused, naming the key.
BEHAVIOUR_BEFORE_KEY = {("adapter", "blora", "kl_scale"): "utterances"}


def _with_current_defaults(stored: dict) -> dict:
    """A run's stored plain config with the keys it lacks at their current defaults — or, for
    keys whose default changed the behaviour (:data:`BEHAVIOUR_BEFORE_KEY`), at the value the
    run had — (as stored, if the current code no longer accepts it: then every difference shows)."""
    stored = copy.deepcopy(stored)
    for (section, kind, key), value in BEHAVIOUR_BEFORE_KEY.items():
        settings = stored.get(section)
        if isinstance(settings, dict) and settings.get("type") == kind:
            settings.setdefault(key, value)
    try:
        return parse_config(stored).to_plain()
    except ConfigError:
        return stored


def check_same_data(state: RunState, fingerprints: dict[str, dict]) -> None:
    """Refuse to resume when a set now selects other utterances than when the run started."""
    changed = [key for key, value in state.data.items() if fingerprints.get(key) != value]
    if changed:
        raise ConfigError(
            f"the data changed since this run started ({', '.join(changed)} now select other utterances: "
            "edited manifest, or rows that became unreadable); use another output_dir"
        )


def _foundation_inputs(plain: dict) -> dict:
    """The parts of a plain config that row 0 depends on: model, evaluation, data and the
    evaluated sets (a task's training selection does not matter)."""
    tasks = [{k: v for k, v in task.items() if k != "train"} for task in plain["tasks"]]
    general = [{k: v for k, v in g.items() if k != "dev"} for g in plain["general"]]  # dev: the guard's, not scored
    return {k: plain[k] for k in ("model", "evaluation", "data")} | {"tasks": tasks, "general": general}


def foundation_row(source: Path, config: ExperimentConfig, fingerprints: dict[str, dict]) -> dict:
    """Row 0 of the run in ``source``, checked to be the one ``config`` would compute.

    The foundation row does not depend on the strategy, the adapter or the training
    settings, so runs that differ only there can share it (``clasr run --foundation-from``).
    Refused when the model, evaluation, data settings or evaluated sets differ.
    """
    other = load_state(source)
    if not other.rows_done:
        raise ConfigError(f"{source}: no finished foundation row to reuse")
    diff = _result_differences(_foundation_inputs(_with_current_defaults(other.config)), _foundation_inputs(config.to_plain()))
    changed = [k for k, v in fingerprints.items() if not k.startswith(("train/", "guard/", "anchor/")) and other.data.get(k) != v]
    if diff or changed:
        raise ConfigError(
            f"{source}: its foundation row was scored differently (differs at: {', '.join(diff + changed)})"
        )
    return other.rows[0]


def _copy_foundation_hypotheses(source: Path, out: Path) -> None:
    for path in sorted((source / "hyps" / "row0").glob("*.jsonl")):
        write_text(out / "hyps" / "row0" / path.name, path.read_text(encoding="utf-8"))


def evaluate_row(
    bundle: WhisperBundle,
    sets: ExperimentSets,
    config: ExperimentConfig,
    out: Path,
    row: int,
    strategy: Strategy,
    view: bool = False,
) -> dict:
    """Score every evaluation set with the current model, as the strategy deploys it for that
    set (:meth:`Strategy.scoring`); hypothesis files under ``hyps/row<i>/`` (``row<i>_view/``
    for the strategy's extra view of the row)."""
    name = f"row{row}_view" if view else f"row{row}"
    cells = {}
    for eval_set in sets.evaluation:
        with strategy.scoring(bundle.model, eval_set.key):
            result = evaluate(
                bundle,
                eval_set.utterances,
                eval_set.normalizer,
                description=f"{name} {eval_set.key}",
                language=eval_set.language,
                metric=eval_set.metric,
                **decoding_settings(config),
            )
        if is_main_process():  # every process decodes its share of the set; one writes
            write_hypotheses(out / "hyps" / name / f"{eval_set.key.replace('/', '_')}.jsonl", result.rows)
        cells[eval_set.key] = result.summary()
        console.print(
            f"{name} {eval_set.key}: {result.metric.upper()} {100 * result.error_rate:.2f}%"
            f"  WER {100 * result.score.wer:.2f}%  CER {100 * result.score.cer:.2f}%"
            f"  ({len(eval_set.utterances)} utt, {result.seconds:.1f}s, {result.token_limit_hits} at token limit)"
            + (f"  detected languages {result.languages}" if eval_set.language == "auto" else "")
        )
    return cells


def check_languages(config: ExperimentConfig, bundle: WhisperBundle) -> None:
    """ConfigError naming the key of every set whose language the model cannot take
    (another language than English on an English-only model)."""
    named = [(f"tasks.{i}.language", task.language) for i, task in enumerate(config.tasks)]
    named += [(f"general.{i}.language", general.language) for i, general in enumerate(config.general)]
    problems = []
    for key, language in named:
        try:
            prompt_language(bundle.model, bundle.tokenizer, config.set_language(language), where=key)
        except ModelError as error:
            problems.append(f"{config.model.name}: {error}")
    if problems:
        raise ConfigError("\n".join(problems))


def run_task(
    bundle: WhisperBundle,
    strategy: Strategy,
    sets: ExperimentSets,
    config: ExperimentConfig,
    accelerator: Accelerator,
    index: int,
    out: Path,
    steps_before: int = 0,
) -> dict:
    """Train on task ``index`` (1-based) and apply the strategy; returns the row's training facts.
    ``steps_before``: the run's optimizer steps in earlier tasks (the trackers' step axis)."""
    task = config.tasks[index - 1]
    collator = _task_collator(bundle, config, task, sets, config.tasks[: index - 1])
    earlier = [(t.name, sets.train[t.name]) for t in config.tasks[: index - 1]]
    context = TaskContext(index, task.name, sets.train[task.name], collator, config.seed + index, earlier)
    if index == 1 and sets.anchor:  # IHR's anchor: the foundation model's curvature, before task 1
        context.anchor, context.anchor_collator = _anchor(bundle, sets)
    start = time.perf_counter()
    strategy.before_task(bundle.model, context)
    before = time.perf_counter() - start
    utterances = strategy.training_utterances(context)
    adapting = (
        task_adapters(bundle.model, config.adapter, training_set(utterances, collator),
                      out / "adapters" / f"task{index}_{task.name}" if is_main_process() else None)
        if config.adapter
        else nullcontext({})
    )
    set_seed(context.seed)  # adapters are initialised from the task's seed, so a resumed run draws the same ones
    with adapting as adapter_facts:
        guard = _task_guard(bundle, sets.guard, config)
        stats = train_task(
            bundle.model,
            utterances,
            collator,
            config.train,
            accelerator,
            seed=context.seed,
            extra_loss=_combined_extra_loss(strategy, config.adapter is not None),
            description=f"task {index} {task.name}",
            on_step=guard.after_step if guard else None,
            steps_before=steps_before,
        )
        if config.adapter:
            strategy.adapters_trained(bundle.model, context)
    start = time.perf_counter()
    facts = strategy.after_task(bundle.model, context)
    after = time.perf_counter() - start
    console.print(f"task {index} {task.name}: {stats.optimizer_steps} steps in {stats.seconds:.0f}s {facts or ''}")
    if stats.skipped_steps:
        console.print(f"[yellow]task {index} {task.name}: {len(stats.skipped_steps)} step(s) skipped for a bad loss:[/] {stats.skipped_steps}")
    return {
        "train": stats.summary(),
        "adapter": adapter_facts,
        "losses": stats.losses,
        "strategy": facts,
        "strategy_seconds": {"before_task": before, "after_task": after},
    } | ({"guard": guard.facts()} if guard else {})


def decoding_settings(config: ExperimentConfig) -> dict:
    """The run's decoding settings, the same for the matrix's rows and the guard's checks."""
    evaluation = config.evaluation
    return {
        "batch_size": evaluation.batch_size,
        "limits": evaluation.limits,
        "engine": evaluation.engine,
        "compute_type": evaluation.compute_type,
    }


def guard_scorer(bundle: WhisperBundle, config: ExperimentConfig) -> Scorer:
    """The guard's error rate (the set's metric) of the model as it is now on a guarded set,
    decoded and scored as every evaluation set is (the run's evaluation settings)."""

    def score(guarded_set: GuardedSet) -> float:
        return evaluate(
            bundle,
            guarded_set.utterances,
            guarded_set.normalizer,
            description=f"guard {guarded_set.name}",
            language=guarded_set.language,
            metric=guarded_set.metric,
            **decoding_settings(config),
        ).error_rate

    return score


def guard_loss_scorer(bundle: WhisperBundle, config: ExperimentConfig) -> LossScorer:
    """The reference loss (nats per token) of the model as it is now on a guarded set, its
    transcripts prompted in the set's language (:mod:`clasr.reference_loss`)."""

    def score(guarded_set: GuardedSet) -> tuple[float, int]:
        collator = SpeechCollator(
            bundle.feature_extractor, bundle.tokenizer, bundle.window_frames,
            max_target_positions=bundle.model.config.max_target_positions,
            language=prompt_language(bundle.model, bundle.tokenizer, guarded_set.language),
        )
        return reference_loss(bundle.model, collator, guarded_set.utterances, config.evaluation.batch_size)

    return score


def _task_guard(bundle: WhisperBundle, guarded: list[GuardedSet], config: ExperimentConfig) -> TaskGuard | None:
    """The guard of one task, its start already scored (None when the guard is off). Every
    process scores it (same weights, same decision), so no process trains on alone."""
    if config.guard is None:
        return None
    # the loss needs a prompt language: not measured on a set detected per utterance ('auto' on a multilingual model)
    named = all(prompt_language(bundle.model, bundle.tokenizer, s.language) != AUTO for s in guarded)
    guard = TaskGuard(config.guard, bundle.model, guarded, guard_scorer(bundle, config), log=console.print,
                      loss_scorer=guard_loss_scorer(bundle, config) if named else None)
    guard.start()
    return guard


def _combined_extra_loss(strategy: Strategy, with_adapters: bool):
    """The strategy's extra loss term plus the adapters' own (BLoRA's KL)."""

    def extra(model, batch, logits):
        terms = [strategy.extra_loss(model, batch, logits), adapter_extra_loss(model) if with_adapters else None]
        terms = [t for t in terms if t is not None]
        return sum(terms) if terms else None

    return extra


def export_model(bundle: WhisperBundle, target: Path) -> None:
    """The deployed model as a transformers checkpoint (weights, config, tokenizer, and a feature
    extractor cut to the encoder window), ready for ``pipeline("automatic-speech-recognition")``."""
    with atomic_path(target) as tmp:
        bundle.model.save_pretrained(tmp)
        bundle.tokenizer.save_pretrained(tmp)
        windowed_feature_extractor(bundle.feature_extractor, bundle.window_frames).save_pretrained(tmp)


def _task_collator(bundle: WhisperBundle, config: ExperimentConfig, task, sets: ExperimentSets, earlier=()) -> SpeechCollator:
    """The collator task ``task`` trains with: its language in the prompt, targets bounded by the
    decoder's positions (the screen before a run checks transcripts with the same one); the
    training utterances of the ``earlier`` tasks (which ER and joint training replay) keep
    their own task's language."""
    language = lambda t: prompt_language(bundle.model, bundle.tokenizer, config.set_language(t.language))  # noqa: E731
    return SpeechCollator(
        bundle.feature_extractor,
        bundle.tokenizer,
        bundle.window_frames,
        max_target_positions=bundle.model.config.max_target_positions,
        language=language(task),
        languages=utterance_languages([(t.name, language(t), sets.train[t.name]) for t in [*earlier, task]]),
    )


def _anchor(bundle: WhisperBundle, sets: ExperimentSets) -> tuple[list, SpeechCollator]:
    """The anchor sets' utterances and a collator that prompts each in its own set's language."""
    language = lambda code: prompt_language(bundle.model, bundle.tokenizer, code)  # noqa: E731
    named = [(name, language(code), utts) for name, code, utts in sets.anchor]
    collator = SpeechCollator(
        bundle.feature_extractor, bundle.tokenizer, bundle.window_frames,
        max_target_positions=bundle.model.config.max_target_positions,
        language=named[0][1], languages=utterance_languages(named),
    )
    return [u for _, _, utts in named for u in utts], collator


def _require_space_for_task(out: Path, bundle: WhisperBundle, strategy: Strategy, last: bool) -> None:
    """Before training: room for the task's checkpoint (and, after the last task, the exported model)."""
    needed = commit_bytes(bundle.model, strategy.state_dict()) + (model_bytes(bundle.model) if last else 0)
    require_free_space(out, needed, "the next task's checkpoint" + (" and the exported model" if last else ""))


def _write_results(out: Path, state: RunState, config: ExperimentConfig) -> dict:
    tasks = [t.name for t in config.tasks]
    general = [g.name for g in config.general]
    dev = [t.name for t in config.tasks if t.dev is not None]
    write_guard(out, state.rows)
    write_json(out / "timings.json", _timings(state))
    return write_results(out, state.rows, tasks, general, dev)


def _timings(state: RunState) -> dict:
    rows = []
    for i, row in enumerate(state.rows):
        eval_seconds = {key: cell["seconds"] for key, cell in row["cells"].items()}
        utts = {key: cell["utterances"] for key, cell in row["cells"].items()}
        rows.append(
            {
                "row": i,
                "label": row["label"],
                "seconds": row.get("seconds"),  # the row's wall time: training, strategy, scoring
                "train": row.get("train"),
                "strategy_seconds": row.get("strategy_seconds"),
                "guard_seconds": row["guard"]["seconds"] if row.get("guard") else None,  # within train seconds
                "eval_seconds": eval_seconds,
                "decode_seconds_per_utterance": sum(eval_seconds.values()) / max(sum(utts.values()), 1),
            }
        )
    return {"rows": rows, "total_seconds": sum(r.get("seconds", 0.0) for r in state.rows)}


def run_experiment(config: ExperimentConfig, foundation_from: Path | None = None) -> dict:
    """Run (or resume) ``config``; returns the metrics (``complete: true`` once every row is done).

    ``foundation_from``: a results folder whose row 0 is reused instead of scoring the
    foundation model again (see :func:`foundation_row`); ignored when resuming.

    The main process holds the output folder's lock (:func:`clasr.experiment.lock.run_lock`)
    throughout, so a second run on the folder is refused; temporary folders that a killed run
    left there are removed first.
    """
    out = Path(config.output_dir)
    if not process_state().is_main_process:
        return _run(config, foundation_from)
    with run_lock(out) as stale:
        if stale:
            console.print(f"taking over the lock of process {stale.get('pid')} ({stale.get('command', '')}), which ended without releasing it", highlight=False)
        for orphan in remove_orphans(out):
            console.print(f"removed {orphan}, left by an interrupted write", highlight=False)
        return _run(config, foundation_from)


def _remove_unfinished_rows(out: Path, rows_done: int) -> None:
    """Hypothesis files of rows that were being scored when a run was killed (never committed)."""
    for folder in sorted((out / "hyps").glob("row*")):
        number = folder.name.removeprefix("row").removesuffix("_view")
        if number.isdigit() and int(number) >= rows_done:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass
class _Run:
    """What the steps of one run share once it has started (or resumed)."""

    config: ExperimentConfig
    out: Path
    state: RunState
    sets: ExperimentSets
    bundle: WhisperBundle
    strategy: Strategy
    accelerator: Accelerator
    main: bool  # the process that writes every file (every process scores its share of each set)
    metrics: dict


def _run(config: ExperimentConfig, foundation_from: Path | None) -> dict:
    """The recipe: check the folder against the config; rebuild the files of a finished run, or
    start (or resume) it, then train and score each row still to do, and finish."""
    out = Path(config.output_dir)
    state, sets, fingerprints = _checked_state(config, out)
    if state.rows_done == len(config.tasks) + 1 and (out / "model").exists():
        return _rebuild_finished(config, out, state)
    run = _start_or_resume(config, out, state, sets, fingerprints, foundation_from)
    for index in range(run.state.rows_done, len(config.tasks) + 1):
        started = time.perf_counter()
        row = _train_row(run, index) if index > 0 else {"label": "foundation"}
        _score_and_commit_row(run, index, row, started)
    return _finish(run)


def _checked_state(config: ExperimentConfig, out: Path) -> tuple[RunState, ExperimentSets, dict[str, dict]]:
    """The folder's committed state and the config's sets, refused when the folder holds another
    config's run or the sets now select other utterances."""
    state = load_state(out)
    check_output_dir(config, state)
    sets = load_sets(config)
    fingerprints = sets.fingerprints()
    check_same_data(state, fingerprints)
    return state, sets, fingerprints


def _rebuild_finished(config: ExperimentConfig, out: Path, state: RunState) -> dict:
    """A finished run: its derived files rebuilt from the committed state, nothing trained."""
    console.print(f"{out}: every row is done and the model exported; nothing to do")
    if not process_state().is_main_process:
        return {}
    return _write_results(out, state, config)


def _start_or_resume(
    config: ExperimentConfig, out: Path, state: RunState, sets: ExperimentSets, fingerprints: dict[str, dict],
    foundation_from: Path | None,
) -> _Run:
    """Load the model and the strategy, screen the sets and record the config; then restore the
    last committed row's weights and strategy state (resume), or take row 0 from
    ``foundation_from`` (a new run that reuses another run's foundation row)."""
    main = process_state().is_main_process
    if main:
        _remove_unfinished_rows(out, state.rows_done)
    reused = None
    if foundation_from is not None and not state.rows_done:
        reused = foundation_row(Path(foundation_from), config, fingerprints)
    bundle = load_whisper(config.model.name, config.model.window_seconds)
    check_languages(config, bundle)
    strategy = build_strategy(config.strategy)
    accelerator = Accelerator(**accelerator_options(config.tracking, out))
    require_full_parameters(accelerator, config.strategy.name)
    start_run(accelerator, config.tracking, config.name, config.to_plain())
    _screen_and_record(config, out, state, sets, fingerprints, bundle, main)
    if state.rows_done:
        state_tensors = restore(out, bundle.model)
        strategy.load_state_dict({k: v.to(accelerator.device) for k, v in state_tensors.items()})
        console.print(f"resuming {out}: rows 0..{state.rows_done - 1} already done")
    elif reused is not None:
        state.rows = [reused]
        if main:
            _copy_foundation_hypotheses(Path(foundation_from), out)
            commit(out, state, None, strategy.state_dict())
        console.print(f"foundation row reused from {foundation_from}")
    bundle.model.to(accelerator.device)
    metrics = _write_results(out, state, config) if main else {}
    return _Run(config, out, state, sets, bundle, strategy, accelerator, main, metrics)


def _screen_and_record(
    config: ExperimentConfig, out: Path, state: RunState, sets: ExperimentSets, fingerprints: dict[str, dict],
    bundle: WhisperBundle, main: bool,
) -> None:
    """Drop the rows the model cannot take (each task with its own collator), and record the
    config, the data fingerprints and the data report."""
    collators = {task.name: _task_collator(bundle, config, task, sets, config.tasks[:i]) for i, task in enumerate(config.tasks)}
    if sets.anchor:
        collators |= dict.fromkeys((f"anchor/{name}" for name, _, _ in sets.anchor), _anchor(bundle, sets)[1])
    screen_sets(sets, collators)
    skipped = sets.bad_row_counts()
    state.config, state.data = config.to_plain(), fingerprints
    if main:  # evaluation and every write happen once, on the main process
        write_text(out / "config.yaml", yaml.safe_dump(state.config, sort_keys=False))
        write_json(out / "data_report.json", {"bad_row_counts": skipped, "sets": sets.reports})
    if skipped:
        console.print(f"[yellow]skipped rows by reason:[/] {skipped} (see {out / 'data_report.json'})")


def _train_row(run: _Run, index: int) -> dict:
    """Row ``index``'s training: task ``index`` trained and the strategy applied (after checking
    that its checkpoint will fit on disk)."""
    if run.main:
        _require_space_for_task(run.out, run.bundle, run.strategy, last=index == len(run.config.tasks))
    steps_before = sum(row["train"]["optimizer_steps"] for row in run.state.rows[1:])  # only the main process logs; its rows are all there
    facts = run_task(run.bundle, run.strategy, run.sets, run.config, run.accelerator, index, run.out, steps_before)
    return {"label": f"after {run.config.tasks[index - 1].name}"} | facts


def _score_and_commit_row(run: _Run, index: int, row: dict, started: float) -> None:
    """Score every set with the model as deployed (and the strategy's extra view, if any), then
    commit the row with the weights and the strategy's state, atomically."""
    view = run.strategy.extra_view(run.bundle.model)  # every process scores its share of each set
    row["cells"] = evaluate_row(run.bundle, run.sets, run.config, run.out, index, run.strategy)
    if view is not None:
        label, deployed = view
        with deployed:
            cells = evaluate_row(run.bundle, run.sets, run.config, run.out, index, run.strategy, True)
            row["view"] = {"label": label, "cells": cells}
    if run.main:
        row["seconds"] = time.perf_counter() - started
        run.state.rows.append(row)
        commit(run.out, run.state, run.bundle.model if index > 0 else None, run.strategy.state_dict())
        run.metrics = _write_results(run.out, run.state, run.config)
        log_row(run.accelerator, index, row["cells"], run.metrics)
        _raise_general_alarm(run)
    run.accelerator.wait_for_everyone()


def _raise_general_alarm(run: _Run) -> None:
    """Say at once when the row just scored lost a general set's ability beyond its noise."""
    try:
        losses = general_losses(run.out, run.state.rows)
    except UtteranceErrorsError as error:
        console.print(f"[yellow]the general sets' change was not checked: {error}[/]")
        return
    for loss in losses:
        console.print(f"[bold yellow]{loss.message()}[/]")
    if losses and run.config.guard is None:
        console.print("[yellow]what the foundation could do is not being kept: a guard (`guard: stop`) watches it "
                      "while a task trains (README, \"General-ability guard\")[/]")


def _finish(run: _Run) -> dict:
    """The deployed model exported once; returns the run's metrics."""
    end_run(run.accelerator)
    if run.main and not (run.out / "model").exists():
        require_free_space(run.out, model_bytes(run.bundle.model), "the exported model")
        export_model(run.bundle, run.out / "model")
    return run.metrics
