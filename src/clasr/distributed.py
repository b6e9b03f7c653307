"""The processes of a multi-process run (``accelerate launch``, ``torchrun``; one process per GPU or core).

Every process runs the same code. Work that is a sum over examples is split between them:
process r of n takes items r, r + n, r + 2n, … of a list (:func:`shard`), and their partial
sums are added up (:func:`sum_across_processes`, Accelerate's ``reduce``). For a statistic
that clasr stores as an average over its N terms (K-FAC factors, the diagonal Fisher), the
processes therefore exchange the sums N·A and the counts N, never their averages::

    A = Σ_r S_r / Σ_r N_r,        S_r = Σ_{p on process r} x_p x_pᵀ,   N_r = its number of terms

which equals the single-process average over the same items up to the order of the float64
additions. Lists of Python objects (decoded hypotheses) come back with :func:`gather`.

Without a launcher (or with one process) all of this is the identity: one process takes every
item and nothing is exchanged.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Sequence, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import gather_object, reduce

T = TypeVar("T")


def process_state() -> PartialState:
    """This process's place in the run (Accelerate's shared state, initialised on first use).

    A launcher sets ``WORLD_SIZE``; on a machine without CUDA the processes then talk through
    gloo on the CPU. (Accelerate alone would treat such processes as independent
    single-process runs unless told ``cpu=True``: they would each train on everything.)
    """
    return PartialState(cpu=launched() and not torch.cuda.is_available())


def is_main_process() -> bool:
    """True in the process that writes files (rank 0), and in a run without a launcher."""
    return process_state().is_main_process


def shard(items: Sequence[T]) -> list[T]:
    """This process's share of ``items``: every n-th item from the process's index on."""
    state = process_state()
    return list(items[state.process_index :: state.num_processes])


def sum_across_processes(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each tensor summed over the processes (the same dict back in a single process).

    Every process must call this with the same keys, in the same order, and shapes."""
    if process_state().num_processes == 1:
        return tensors
    return {name: reduce(tensor, reduction="sum") for name, tensor in tensors.items()}


def sum_counts(counts: dict[str, int]) -> dict[str, int]:
    """Integer counts summed over the processes (one exchange for all of them)."""
    state = process_state()
    if state.num_processes == 1:
        return dict(counts)
    summed = reduce(torch.tensor(list(counts.values()), dtype=torch.int64, device=state.device), reduction="sum")
    return dict(zip(counts, map(int, summed)))


def gather(items: list[T]) -> list[T]:
    """Every process's ``items`` concatenated in process order (the same list in a single process).

    This is what ``Accelerator.gather_for_metrics`` does for Python objects; its extra step,
    dropping the samples that a prepared DataLoader repeats to even out the last batch, does
    not apply here, since :func:`shard` repeats nothing."""
    if process_state().num_processes == 1:
        return list(items)
    return list(gather_object(items))


def free_port() -> int:
    """A TCP port free on this machine now (the rendezvous of a one-machine launch)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(processes: int, arguments: Sequence[str]) -> list[str]:
    """``accelerate launch`` of ``python ARGUMENTS`` (``-m clasr run …``, or a script and its
    arguments) as ``processes`` processes on this machine.

    ``--multi_gpu`` is Accelerate's multi-process launcher (torchrun); on a machine without
    CUDA the processes join over gloo (:func:`process_state`), each with its share of the cores.
    """
    if processes < 2:
        raise ValueError(f"a launch needs at least 2 processes, got {processes}")
    threads = [] if torch.cuda.is_available() else ["--num_cpu_threads_per_process", str(max(1, (os.cpu_count() or 1) // processes))]
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), *threads, *arguments,
    ]  # fmt: skip


def launched() -> bool:
    """True inside a process that a launcher started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class ShardedParametersError(ValueError):
    """The launch shards the model's parameters (FSDP, DeepSpeed ZeRO-3), which clasr cannot run on."""


def require_full_parameters(accelerator, strategy: str) -> None:
    """:class:`ShardedParametersError` under FSDP or DeepSpeed ZeRO-3.

    Between tasks every strategy reads and changes whole parameters in every process: the
    snapshot before a task, the merges of FTA/IHR/centralization and the task-vector merges,
    EWC's Fisher and anchor, and every row's decoding and checkpoint. FSDP and ZeRO-3 leave
    each process a shard of them. DDP (plain multi-process) and ZeRO-1/2 keep whole parameters.
    """
    kind = str(accelerator.distributed_type).split(".")[-1]
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if kind == "FSDP" or (kind == "DEEPSPEED" and plugin is not None and plugin.zero_stage == 3):
        mode = "FSDP" if kind == "FSDP" else "DeepSpeed ZeRO-3"
        raise ShardedParametersError(
            f"{mode} shards the model's parameters across processes, but strategy {strategy!r} (like every clasr "
            "strategy and the evaluation between tasks) needs them whole in every process; launch with plain "
            "data parallelism (accelerate launch --multi_gpu) or DeepSpeed ZeRO stage 1 or 2"
        )
