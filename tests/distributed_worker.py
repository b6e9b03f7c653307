"""Started by tests/test_distributed.py as two CPU processes (gloo) under ``accelerate launch``.

usage: distributed_worker.py CHECKPOINT DATA FT_CONFIG OUT
       distributed_worker.py runs CONFIG…    (every strategy and adapter, run to the end)

Each step is what a multi-process run does; the main process saves what the test compares
with one process doing the same: IHR's K-FAC factors and EWC's Fisher (each process took its
share of the batches/utterances), the hypotheses of a sharded evaluation, the averaged
gradients of the first optimizer step and the weights after a few, and a results folder of
an FT run stopped after its first task (the test resumes it in one process).
"""

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import save_file

from clasr.data.batching import SpeechCollator
from clasr.data.manifest import Selection, read_dataset
from clasr.decoding import DecodeLimits
from clasr.distributed import is_main_process, process_state
from clasr.evaluate import evaluate
from clasr.experiment import runner
from clasr.experiment.config import load_config
from clasr.models.whisper import load_whisper
from clasr.strategies.base import TaskContext
from clasr.strategies.ewc import EWCConfig
from clasr.strategies.ihr import IHRConfig
from clasr.train import TrainConfig, train_task

# The settings the test repeats in one process.
IHR = IHRConfig(curvature_batches=3, curvature_batch_size=2, curvature_bf16=False)
EWC = EWCConfig(fisher_utterances=5)
TRAIN = dict(learning_rate=1e-3, batch_size=2, warmup_ratio=0.0, max_steps=2)  # grad_accumulation: 1 here, 2 there
LIMITS = DecodeLimits(max_new_tokens=4)
SEED = 5


class Interrupted(Exception):
    """Stands in for a kill after task 1 was committed."""


def task(bundle, data: Path) -> TaskContext:
    utterances, _ = read_dataset(data, Selection(split="train"))
    collator = SpeechCollator(bundle.feature_extractor, bundle.tokenizer, bundle.window_frames)
    return TaskContext(1, "a", utterances, collator, SEED)


def strategy_state(settings, bundle, context: TaskContext) -> dict[str, torch.Tensor]:
    """The strategy's state after a task: IHR's factors, EWC's Fisher and anchor."""
    strategy = settings.build()
    strategy.before_task(bundle.model, context)
    strategy.after_task(bundle.model, context)
    return strategy.state_dict()


@contextmanager
def first_step_gradients(model: torch.nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Yields a dict that is filled with each parameter's gradient (after the processes'
    reduction) when the optimizer takes its first step."""
    names = {id(p): n for n, p in model.named_parameters()}
    captured: dict[str, torch.Tensor] = {}
    step = torch.optim.AdamW.step

    def recording(self, *args, **kwargs):
        if not captured:
            captured.update({names[id(p)]: p.grad.clone() for g in self.param_groups for p in g["params"] if p.grad is not None})
        return step(self, *args, **kwargs)

    torch.optim.AdamW.step = recording
    try:
        yield captured
    finally:
        torch.optim.AdamW.step = step


def train_ft(bundle, context: TaskContext, grad_accumulation: int) -> tuple[dict[str, torch.Tensor], int]:
    """Train ``TRAIN`` steps; returns the first step's gradients and the utterances trained on
    (the model is trained in place)."""
    from accelerate import Accelerator

    config = TrainConfig(**TRAIN, grad_accumulation=grad_accumulation)
    with first_step_gradients(bundle.model) as gradients:
        stats = train_task(bundle.model, context.train_utterances, context.collator, config, Accelerator(), seed=SEED)
    return gradients, stats.utterances


def stopping_at_task_2(train):
    """``train`` (the runner's ``train_task``) that raises :class:`Interrupted` when task 2 starts."""
    calls = []

    def first_task_only(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted
        return train(*args, **kwargs)

    return first_task_only


def main(checkpoint: str, data: str, ft_config: str, out: str) -> None:
    out_dir = Path(out)
    assert process_state().num_processes == 2, "launch with two processes"
    bundle = load_whisper(checkpoint, 2.0)
    context = task(bundle, Path(data))
    saved = {"ihr": strategy_state(IHR, bundle, context), "ewc": strategy_state(EWC, bundle, context)}
    tests, _ = read_dataset(Path(data), Selection(split="test"))
    rows = evaluate(bundle, tests, batch_size=2, limits=LIMITS).rows

    gradients, utterances = train_ft(bundle, context, grad_accumulation=1)
    if is_main_process():
        for name, tensors in saved.items():
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(out_dir / f"{name}.safetensors"))
        save_file(gradients, str(out_dir / "gradients.safetensors"))
        save_file({k: v.detach().clone() for k, v in bundle.model.state_dict().items()}, str(out_dir / "trained.safetensors"))
        (out_dir / "rows.json").write_text(json.dumps(rows))
        (out_dir / "trained_utterances.json").write_text(json.dumps(utterances))

    runner.train_task = stopping_at_task_2(runner.train_task)
    try:
        runner.run_experiment(load_config(ft_config))
    except Interrupted:
        pass


def runs(*configs: str) -> None:
    """``distributed_worker.py runs CONFIG…``: each config run to the end, one after the other."""
    for config in configs:
        runner.run_experiment(load_config(config))


if __name__ == "__main__":
    runs(*sys.argv[2:]) if sys.argv[1] == "runs" else main(*sys.argv[1:])
