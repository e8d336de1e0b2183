"""torch.distributed for the learner (DESIGN §9): one process per device, launched by ``torchrun``.

::

    torchrun --nproc-per-node 2 -m agents.cli train --config quickstart --set steps=2

What a run does with ``WORLD_SIZE > 1`` (torchrun's environment variables):

* :func:`session` joins the process group from torchrun's ``env://`` variables; the backend follows
  the device: ``gloo`` on CPU, ``cpu:gloo,cuda:nccl`` on CUDA (model tensors through NCCL, small
  bookkeeping through gloo). Every collective times out after ``config.dist_timeout_s``: a rank that
  never arrives is an error, never a hang; a missing variable is an error naming it.
* Each rank rolls out its share of whole groups (:func:`rank_groups`): the step's draws stay
  functions of ``(seed, step)`` over the whole batch (same problems, groups and schedule values at
  any world size), and group-normalised advantages are unchanged by a split between groups.
* :func:`wrap_for_training`: DDP (default), or FSDP2 (``distributed = "fsdp2"``) for a model whose
  training state does not fit one device (no ``--resume`` under FSDP2 yet: its checkpoints hold the
  whole weights and rank 0's optimizer shard only). :class:`RowShard` places this rank's rows in the
  global batch for :func:`agents.update.ppo_update` (plan over global rows, global token count).
* Only rank 0 writes (metrics, checkpoints, ``final_policy``, logs): :func:`is_main`.

With ``WORLD_SIZE`` unset or 1 every helper is the single-process identity: no process group, no
collective, the code path and the numbers of a plain run.

Example:
    >>> rank_groups(num_groups=5)          # single process: every group
    range(0, 5)
    >>> RowShard.whole(8).local_rows([3, 7, 1])
    [3, 7, 1]
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from agents.device import pick_device

#: Values of ``TrainConfig.distributed``.
STRATEGIES = ("ddp", "fsdp2")
#: The variables torchrun sets that :func:`init_from_env` needs.
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class LaunchError(RuntimeError):
    """The launch is misconfigured (torchrun variables, devices, ranks vs groups): fix the command."""


def launched_world_size() -> int:
    """The world size torchrun launched this process into (``WORLD_SIZE``; 1 without torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise LaunchError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer") from None


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True on the rank that writes files and logs (rank 0; the only rank of a plain run)."""
    return rank() == 0


def rank_device(device: torch.device) -> torch.device:
    """This rank's device: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun, CPU stays CPU."""
    if device.type != "cuda" or world_size() == 1:
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def init_from_env(device: torch.device, timeout_s: float) -> torch.device:
    """Join the process group torchrun set up (when ``WORLD_SIZE > 1``); return this rank's device.

    Raises :class:`LaunchError` naming what is wrong: a torchrun variable missing, fewer visible GPUs than
    local ranks. The rendezvous and every later collective time out after ``timeout_s`` seconds.
    """
    world = launched_world_size()
    if world <= 1 or dist.is_initialized():
        return rank_device(device)
    missing = [name for name in TORCHRUN_VARS if not os.environ.get(name)]
    if missing:
        raise LaunchError(
            f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with `torchrun --nproc-per-node N -m "
            "agents.cli train ...` (or set every one of " + ", ".join(TORCHRUN_VARS) + ")"
        )
    local_rank = int(os.environ["LOCAL_RANK"])
    timeout = datetime.timedelta(seconds=float(timeout_s))
    if device.type == "cuda":
        if not torch.cuda.is_available() or torch.cuda.device_count() <= local_rank:
            raise LaunchError(
                f"LOCAL_RANK={local_rank} needs GPU {local_rank}, but {torch.cuda.device_count()} GPU(s) are visible: "
                "start at most one process per GPU (torchrun --nproc-per-node), or set device = 'cpu'"
            )
        torch.cuda.set_device(local_rank)
        dist.init_process_group("cpu:gloo,cuda:nccl", timeout=timeout, device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return rank_device(device)


def destroy() -> None:
    """Leave the process group (a no-op when none was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str, timeout_s: float) -> Iterator[torch.device]:
    """``with session(config.device, config.dist_timeout_s):`` join, run, always destroy the group
    (``device``: a config device string, so the backend follows the device the run trains on)."""
    # only a group this call joined is ours to leave: vLLM's in-process engine opens its own later
    ours, before = False, dist.is_initialized()
    try:
        rank_dev = init_from_env(pick_device(device), timeout_s)
        ours = not before and dist.is_initialized()
        yield rank_dev
        if ours:  # leave together: a rank that tears gloo down while a peer still runs (rank 0's final
            dist.barrier()  # evaluation) was seen to abort at exit ("terminate called without an active exception")
    finally:
        if ours:
            destroy()


@contextlib.contextmanager
def rank_zero_first() -> Iterator[None]:
    """Rank 0 runs the block first, the others after it (e.g. building or cleaning files they read)."""
    if not is_main():
        dist.barrier()
    yield
    if is_main() and world_size() > 1:
        dist.barrier()


def silent(message: str) -> None:
    """The log of ranks other than 0 (each line once, from rank 0)."""


def check_same_config(text: str) -> None:
    """Raise :class:`LaunchError` unless every rank runs the same config (``text``: its JSON dump), or when
    torchrun launched this process but no process group was joined (each rank would train alone and
    all would write the same files)."""
    if launched_world_size() > 1 and not dist.is_initialized():
        raise LaunchError(
            f"WORLD_SIZE={launched_world_size()} but no process group: run training inside "
            "`with agents.distributed.session(config.device, config.dist_timeout_s):` (eapo train does)"
        )
    if world_size() == 1:
        return
    digests: list[Any] = [None] * world_size()
    dist.all_gather_object(digests, hashlib.sha256(text.encode()).hexdigest())
    if len(set(digests)) > 1:
        raise LaunchError(f"ranks run different configs (sha256 per rank: {digests}); launch them with one command")


def sum_over_ranks(values: Sequence[float | torch.Tensor]) -> list[float]:
    """Element-wise sums over the ranks (float64), the same list on every rank; ``values`` are numbers
    or one-element tensors (e.g. a mask's ``.sum()``)."""
    out = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if world_size() > 1:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.tolist()


def mean_over_ranks(stats: dict[str, float]) -> dict[str, float]:
    """Every value averaged over the ranks (keys in the same order on every rank)."""
    if world_size() == 1:
        return stats
    means = sum_over_ranks(list(stats.values()))
    return {k: v / world_size() for k, v in zip(stats, means)}


def weighted_over_ranks(stats: dict[str, float], weight: float, maxima: Sequence[str] = ()) -> dict[str, float]:
    """Per-rank means (each over ``weight`` items, e.g. its policy tokens) made means over every rank's
    items; the keys in ``maxima`` take the largest value of any rank instead."""
    if world_size() == 1:
        return stats
    means = [k for k in stats if k not in maxima]
    sums = sum_over_ranks([stats[k] * weight for k in means] + [weight])
    out = {k: v / max(sums[-1], 1e-12) for k, v in zip(means, sums)}
    if maxima:
        top = torch.tensor([float(stats[k]) for k in maxima], dtype=torch.float64)
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
        out.update(zip(maxima, top.tolist()))
    return {k: out[k] for k in stats}


def gather_to_main(items: list[Any]) -> list[Any]:
    """The ranks' lists concatenated in rank order on rank 0; elsewhere ``items`` as given (pickled
    objects: meant for per-episode records, not tensors of a large batch)."""
    if world_size() == 1:
        return items
    parts: list[Any] | None = [None] * world_size() if is_main() else None
    dist.gather_object(items, parts, dst=0)
    return [x for part in parts for x in part] if parts is not None else items


def full_parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter whole, by name (FSDP2's sharded DTensors all-gathered: a collective there)."""
    out = {}
    for name, p in module.named_parameters():
        t = p.detach()
        out[name] = t.full_tensor() if hasattr(t, "full_tensor") else t
    return out


def parameter_digest(module: torch.nn.Module) -> str:
    """sha256 of the module's parameters (names, shapes and bytes): equal digests, equal weights."""
    h = hashlib.sha256()
    for name, t in full_parameters(module).items():
        h.update(name.encode())
        h.update(t.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def digests_over_ranks(module: torch.nn.Module) -> list[str]:
    """:func:`parameter_digest` of every rank (a collective), in rank order; ``RuntimeError`` when
    they differ (the ranks were meant to apply the same updates: a silent divergence is a bug)."""
    out: list[Any] = [parameter_digest(module)] * world_size()
    if world_size() > 1:
        dist.all_gather_object(out, out[0])
    if len(set(out)) > 1:
        raise RuntimeError(f"the ranks ended with different weights (sha256 per rank: {out})")
    return [str(d) for d in out]


def _split_sizes(n: int, parts: int) -> list[int]:
    k, r = divmod(n, parts)
    return [k + (j < r) for j in range(parts)]


def rank_groups(num_groups: int) -> range:
    """The groups this rank rolls out: a contiguous, nearly equal share of ``range(num_groups)``
    (ranks below ``num_groups % world`` get one more). :class:`LaunchError` if a rank would get none."""
    world = world_size()
    if num_groups < world:
        raise LaunchError(f"prompts_per_step = {num_groups} < {world} ranks: every rank needs at least one group")
    sizes = _split_sizes(num_groups, world)
    start = sum(sizes[: rank()])
    return range(start, start + sizes[rank()])


def rank_sampler_key(key: int) -> int:
    """This rank's sampling key for an engine that keys its draws by the *local* row (``hf``, ``vllm``;
    ours keys them by episode id and keeps the step's key). Rank 0 (and a plain run) keeps ``key``;
    other ranks get a mixed one, since equal keys would give every rank's row i the same random
    numbers: their token streams differ from the single-process run's (problems, groups, env seeds
    and schedules do not)."""
    if rank() == 0:
        return key
    digest = hashlib.sha256(f"{key}/{rank()}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**62


@dataclass(frozen=True)
class RowShard:
    """Where this rank's ``rows`` rows sit in a global batch of ``total`` rows (rank order)."""

    offset: int
    rows: int
    total: int
    world: int = 1

    @classmethod
    def whole(cls, rows: int) -> RowShard:
        """A single process: the local batch is the global one."""
        return cls(0, rows, rows, 1)

    @classmethod
    def gather(cls, rows: int) -> RowShard:
        """This rank's shard from every rank's row count (a collective; :meth:`whole` when alone)."""
        if world_size() == 1:
            return cls.whole(rows)
        mine, sizes = torch.tensor([rows]), [torch.zeros(1, dtype=torch.long) for _ in range(world_size())]
        dist.all_gather(sizes, mine)
        counts = [int(c) for c in sizes]
        return cls(sum(counts[: rank()]), rows, sum(counts), world_size())

    def local_rows(self, global_rows: Sequence[int]) -> list[int]:
        """The entries of ``global_rows`` held here, as local indices (order kept)."""
        end = self.offset + self.rows
        return [i - self.offset for i in global_rows if self.offset <= i < end]

    def global_values(self, local: torch.Tensor) -> torch.Tensor:
        """[total] from this rank's [rows] values: every rank's values in place (a sum collective)."""
        if self.world == 1:
            return local
        full = torch.zeros(self.total, dtype=local.dtype, device=local.device)
        full[self.offset : self.offset + self.rows] = local
        dist.all_reduce(full, op=dist.ReduceOp.SUM)
        return full


def wrap_for_training(module: torch.nn.Module, strategy: str, device: torch.device) -> torch.nn.Module:
    """The module the update's forward and backward run through, and the optimizer trains
    (``module`` itself when alone). Build the optimizer over *its* parameters.

    ``ddp``: ``DistributedDataParallel`` around ``module`` (replicated weights, shared with it;
    gradients averaged over the ranks in buckets during backward); it broadcasts rank 0's weights
    when built, so every rank starts equal.
    ``fsdp2``: a copy of ``module`` with ``fully_shard`` on every decoder layer, then on the root:
    its parameters, gradients and AdamW moments are sharded DTensors (weights all-gathered per layer
    for forward and backward, gradients reduce-scattered and averaged like DDP). ``module`` stays
    whole, for generation, checkpoints and export: :func:`sync_full_weights` refreshes it after each
    update. So a rank holds the full weights once (2 bytes a parameter in bf16) and 1/N of the
    training state (gradients and moments, 12 bytes a parameter in fp32), which is what does not fit. FSDP2 over gloo once summed instead of averaging gradients
    (pytorch #162338): on torch 2.13 it passes the same equality test as DDP (tests/test_ddp.py), so
    CPU is allowed, and that test guards it.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"distributed = {strategy!r}: one of {', '.join(STRATEGIES)}")
    if world_size() == 1:
        return module
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)  # buffers: constants
    from torch.distributed.fsdp import fully_shard

    sharded = copy.deepcopy(module)
    for layer in decoder_layers(sharded):
        fully_shard(layer)
    fully_shard(sharded)
    return sharded


def is_sharded(learner: torch.nn.Module | None) -> bool:
    """True for an FSDP2 learner (its weights live apart from the whole module)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(learner, FSDPModule)


@torch.no_grad()
def sync_full_weights(learner: torch.nn.Module | None, module: torch.nn.Module) -> None:
    """Copy an FSDP2 learner's updated weights into the whole ``module``, in place (the engines hold
    its tensors); a collective. A no-op for DDP and a plain run, whose learner shares the weights."""
    if not is_sharded(learner):
        return
    assert learner is not None
    targets = dict(module.named_parameters())
    for name, full in full_parameters(learner).items():
        targets[name].copy_(full)


def decoder_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks FSDP2 shards one by one: the ``ModuleList`` holding most parameters."""
    lists = [m for m in module.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    if not lists:
        return []
    largest: torch.nn.ModuleList = max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))
    return list(largest)


def is_wrapped(module: torch.nn.Module) -> bool:
    """True for a module whose backward synchronises gradients over the ranks (DDP or FSDP2)."""
    from torch.distributed.fsdp import FSDPModule
    from torch.nn.parallel import DistributedDataParallel

    return isinstance(module, (DistributedDataParallel, FSDPModule))


@contextlib.contextmanager
def gradient_sync(module: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """Forward + backward inside: gradients synchronised over the ranks only when ``enabled`` (the
    last micro-batch of a mini-batch); earlier micro-batches accumulate locally."""
    from torch.distributed.fsdp import FSDPModule
    from torch.nn.parallel import DistributedDataParallel

    if enabled or world_size() == 1:
        yield
    elif isinstance(module, DistributedDataParallel):
        with module.no_sync():
            yield
    elif isinstance(module, FSDPModule):  # FSDP2: no reduce-scatter until the last micro-batch
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        yield
