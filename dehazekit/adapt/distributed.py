"""Data-parallel adaptation under torchrun: shard each batch over ranks, average both levels' gradients.

    torchrun --nproc-per-node 4 -m dehazekit adapt --images real/ --backbone gunet-t ...
    dehazekit adapt --nproc 4 ...            # launches the line above

Every rank draws the SAME global batch from the same seeded samplers and keeps its 1/N slice, so the
sampler state (and therefore a checkpoint) does not depend on the process count: a run resumes with any
number of processes. Each gradient evaluation of the search and of the fine-tune -- LoRA weights and
gate logits alike -- is averaged over ranks before anything is computed from it (the rank-one
hypergradient, clipping, Adam), so all ranks take bit-identical steps and hold identical gates and
selection; ``check_identical`` verifies that at the stage boundaries. With equal slices the average of
per-slice mean losses is the global mean loss, so N processes reproduce one process on the global batch.

This is what DistributedDataParallel does, done by hand: DDP's reducer fires only on ``backward()``, and
the search takes its gradients with ``torch.autograd.grad`` on two batches per step.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dehazekit.runtimes.errors import ConfigError, NumericalError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; ``world == 1`` is a plain single-process run."""

    rank: int = 0
    world: int = 1
    started_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(backend: str | None = None) -> Dist:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, MASTER_ADDR...).

    gloo on CPU, nccl when CUDA is present (unless ``backend`` says otherwise). Without WORLD_SIZE > 1,
    a single-process Dist.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return Dist()
    started = False
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend)
        started = True
    if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    rank = dist.get_rank()
    if rank != 0:  # one voice: rank 0 logs progress and writes every file
        logging.getLogger("dehazekit").setLevel(logging.WARNING)
    log.info("distributed adaptation: %d processes (%s)", dist.get_world_size(), dist.get_backend())
    return Dist(rank, dist.get_world_size(), started)


def teardown(ctx: Dist) -> None:
    import torch.distributed as dist

    if ctx.started_here and dist.is_initialized():
        dist.barrier()  # rank 0 may still be writing; nobody leaves before it is done
        dist.destroy_process_group()


def check_batch_size(batch_size: int, ctx: Dist) -> None:
    if ctx.active and batch_size % ctx.world:
        raise ConfigError.build(
            "--batch-size must be divisible by the number of processes",
            got=f"{batch_size} over {ctx.world} processes",
            fix=f"use --batch-size {max(ctx.world, batch_size - batch_size % ctx.world)}",
        )


def shard(batch: Tensor, ctx: Dist) -> Tensor:
    """This rank's contiguous 1/world slice of a global (B, ...) batch."""
    if not ctx.active:
        return batch
    per = batch.shape[0] // ctx.world
    return batch[ctx.rank * per : (ctx.rank + 1) * per]


class GradAverager:
    """``(loss, grads) -> (mean loss, mean grads)`` over all ranks, in one flat all-reduce.

    The hook the search and the fine-tune call on every gradient they take.
    """

    def __init__(self, ctx: Dist) -> None:
        self.ctx = ctx

    def __call__(self, loss: Tensor, grads: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        import torch.distributed as dist

        flat = torch.cat(
            [loss.detach().reshape(1).to(torch.float64)]
            + [g.detach().reshape(-1).to(torch.float64) for g in grads]
        )
        # float64 while reducing: the sum of N float32 slices then rounds once, the same on every rank
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= self.ctx.world
        out, offset = [], 1
        for g in grads:
            out.append(flat[offset : offset + g.numel()].view_as(g).to(g.dtype))
            offset += g.numel()
        return flat[0].to(loss.dtype), out


def check_identical(tensors: Sequence[Tensor], ctx: Dist, what: str) -> None:
    """Fail loudly if ranks disagree on ``tensors`` (they must be bit-identical after averaged steps)."""
    if not ctx.active:
        return
    import torch.distributed as dist

    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    low, high = flat.clone(), flat.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    spread = float((high - low).abs().max()) if flat.numel() else 0.0
    if spread != 0.0:
        raise NumericalError.build(
            f"processes disagree on the {what}",
            got=f"max spread {spread:.3g}",
            expected="identical on every rank",
            fix="report this as a bug (a gradient was not averaged)",
        )
