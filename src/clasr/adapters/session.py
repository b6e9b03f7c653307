"""One task's adapter: injected fresh before training, merged into the base after it.

Within a task the model trains only its adapters; between tasks it is a plain Whisper
again, so every strategy sees merged weights: θ̃_t = θ_{t−1} with each adapted Linear's
weight W + ΔW. Sequential fine-tuning with an adapter (``strategy: ft`` plus an
``adapter:`` section) is therefore sequential adapters merged after each task; FTA, IHR
and centralization act on the merged ΔW.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from torch import nn

from clasr.adapters.base import AdapterSettings, TrainingSet
from clasr.adapters.inject import count_trainable, inject_adapters, remove_adapters, save_adapters
from clasr.adapters.peft_export import save_peft_lora
from clasr.data.batching import SpeechCollator
from clasr.data.manifest import Utterance


def training_set(utterances: Sequence[Utterance], collator: SpeechCollator) -> TrainingSet:
    """The size of a task's training set as its loss sees it: utterances, and target tokens
    (each transcript's tokens plus its end token, the positions the cross-entropy scores)."""
    tokens = sum(len(collator.target_ids(utterance.text)) + 1 for utterance in utterances)
    return TrainingSet(utterances=len(utterances), target_tokens=tokens)


@contextmanager
def task_adapters(
    model: nn.Module, config: AdapterSettings, training: TrainingSet, save_to: Path | None = None
) -> Iterator[dict]:
    """Inject ``config``'s adapters, each prepared for ``training`` (the task's training set);
    on leaving, merge and remove them and restore which parameters are trainable. Yields a dict
    of facts, completed on leaving: adapter type, adapted layers, trainable parameters, per-layer
    settings summary (e.g. SSVD's k split) and the adapter class's own facts (BLoRA: the
    sparsity of the merged update and of the posterior means).

    With ``save_to``, the trained adapters are saved there before the merge:
    ``adapters.safetensors`` (clasr's format) and, for adapters with a PEFT format (LoRA,
    DoRA), ``peft/`` (loadable with ``PeftModel.from_pretrained``)."""
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    adapters = inject_adapters(model, config)
    for adapter in adapters.values():
        adapter.prepare(training)
    facts: dict = {"type": config.type, "layers": len(adapters), "trainable_parameters": count_trainable(model)}
    try:
        yield facts
        settings = Counter(
            tuple(sorted((k, v) for k, v in a.describe().items() if k not in ("in", "out", "params")))
            for a in adapters.values()
        )
        facts["settings"] = [{**dict(key), "layers": n} for key, n in settings.items()]
        facts.update(config.module.task_facts(list(adapters.values())))
        if save_to is not None:
            save_adapters(model, save_to / "adapters.safetensors", config)
            if config.module.peft_exportable:
                save_peft_lora(model, save_to / "peft")
    finally:
        remove_adapters(model, merge=True)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(trainable[name])
