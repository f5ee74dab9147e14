"""Several processes on torchrun: the process group, batch sharding, synchronised batch
norm, and batched work split over ranks.

``torchrun --nproc_per_node N -m deepgen train ...`` starts N copies of deepgen with
RANK/WORLD_SIZE/LOCAL_RANK set; :func:`init_from_env` joins them (gloo on CPU, NCCL on
CUDA). Every rank holds the whole model and draws the same global batch of
``batch_size`` images, then keeps its contiguous 1/N of the rows. The noise a model
draws for a batch (:meth:`deepgen.models.base.Batch.randn`) is drawn for the global batch
and sliced the same way, and batch-norm statistics are pooled over ranks
(:class:`SyncBatchNorm1d`/``2d``). DistributedDataParallel averages the gradients. So N
processes compute what one process computes on the combined batch, up to float rounding.

With one process (no torchrun) every function here is a plain loop and no collective is
called.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError, DeepgenError


def world_size() -> int:
    """Number of processes (1 without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True on the rank that writes files and prints (rank 0)."""
    return rank() == 0


def launched() -> bool:
    """True when torchrun (or another launcher) asked for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env() -> None:
    """Join the process group torchrun described in the environment; nothing without it.

    The backend is NCCL when CUDA is available, else gloo; on CUDA each rank takes the
    device ``cuda:LOCAL_RANK``.

    Raises:
        ConfigError: the environment is incomplete (e.g. WORLD_SIZE without MASTER_ADDR).
    """
    if not launched() or dist.is_initialized():
        return
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE is set but {', '.join(missing)} is not; start several processes "
            "with `torchrun --nproc_per_node N -m deepgen ...`"
        )
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def shutdown() -> None:
    """Leave the process group (if joined). On gloo, the ranks first wait for each other (at
    most a minute), so no rank tears down its connections while rank 0 is still writing the
    run folder: a rank leaving early could abort at exit in gloo's teardown."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        except RuntimeError:  # a rank is gone (it failed or was killed): leave regardless
            pass
    dist.destroy_process_group()


def local_device() -> torch.device:
    """The CUDA device of this rank (``cuda:LOCAL_RANK``) when launched, else ``cuda``."""
    return (
        torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if launched()
        else torch.device("cuda")
    )


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device.

    Raises:
        ConfigError: an unknown device name, or CUDA asked for where there is none.
    """
    if name == "auto":
        return local_device() if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"device {name!r} cannot train or run a model; use auto, cpu, cuda or cuda:N"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but this machine has no MPS device; use --device cpu"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but this machine has no CUDA device; use --device cpu"
        )
    return device


def shard_rows(n: int) -> slice:
    """The rows of a global batch of ``n`` that this rank trains on (contiguous, equal).

    Raises:
        ConfigError: ``n`` is not divisible by the number of processes.
    """
    world = world_size()
    if n % world:
        raise ConfigError(
            f"a batch of {n} cannot be split evenly over {world} processes; "
            f"choose --batch-size divisible by {world}"
        )
    size = n // world
    return slice(rank() * size, (rank() + 1) * size)


def all_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ranks (a copy; the input itself with one process)."""
    if world_size() == 1:
        return values
    out = values.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True if ``flag`` is true on any rank (e.g. a stop request), so all ranks agree."""
    if world_size() == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def main_first(fn: Callable[[], object]) -> object:
    """Run ``fn`` on rank 0 only and tell every rank how it went.

    Returns fn's result on rank 0 and None elsewhere. If fn raised on rank 0, rank 0
    re-raises it and every other rank raises a DeepgenError with its message, so no rank
    waits forever.
    """
    if world_size() == 1:
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001  re-raised below, after telling the others
            error = err
    box = [None if error is None else (type(error).__name__, str(error))]
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[0] is not None:
        raise DeepgenError(f"rank 0 failed: {box[0][0]}: {box[0][1]}")
    return result


def batch_generator(seed: int, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of batch ``index`` of a batched job seeded ``seed``.

    Each batch has its own stream, so a job's result does not depend on how its batches
    are split over ranks. Batch 0 uses ``seed`` itself, so a job of one batch draws what
    ``torch.Generator().manual_seed(seed)`` draws.
    """
    if index == 0:
        return torch.Generator(device=device).manual_seed(seed)
    state = np.random.SeedSequence([seed % 2**63, index]).generate_state(2, np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 31 ^ int(state[1]))


def map_batches(
    fn: Callable[[int, int, int], torch.Tensor | tuple | dict], n: int, batch_size: int
) -> torch.Tensor | tuple | dict:
    """Apply ``fn(index, start, stop)`` to the batches of ``n`` rows, split over ranks.

    ``fn`` returns a tensor of ``stop - start`` rows, or a tuple or dict of them. Batches
    are dealt to ranks in turn; the results come back concatenated in batch order on every
    rank (moved to the CPU).
    """
    starts = list(range(0, n, batch_size))
    mine = [(i, s) for i, s in enumerate(starts) if i % world_size() == rank()]
    parts = {i: _to_cpu(fn(i, s, min(n, s + batch_size))) for i, s in mine}
    if world_size() > 1:
        gathered: list[dict | None] = [None] * world_size()
        dist.all_gather_object(gathered, parts)
        parts = {i: p for d in gathered for i, p in d.items()}
    ordered = [parts[i] for i in range(len(starts))]
    if not ordered:
        raise ConfigError("nothing to compute: zero rows")
    first = ordered[0]
    if isinstance(first, dict):
        return {k: torch.cat([p[k] for p in ordered]) for k in first}
    if isinstance(first, tuple):
        return tuple(torch.cat([p[j] for p in ordered]) for j in range(len(first)))
    return torch.cat(ordered)


def _to_cpu(value):
    if isinstance(value, dict):
        return {k: v.detach().cpu() for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(v.detach().cpu() for v in value)
    return value.detach().cpu()


class _SumOverRanks(torch.autograd.Function):
    """y = sum over ranks of x; the gradient of each rank's x is the sum over ranks of the
    gradients of y (every rank's loss depends on every rank's x through y)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of ``x`` over ranks (``x`` itself with one process)."""
    return _SumOverRanks.apply(x) if world_size() > 1 else x


class _SyncBatchNorm:
    """Batch norm whose training statistics are pooled over all ranks.

    torch's own SyncBatchNorm runs on GPUs only; this one works with gloo on CPU as well.
    With one process, or in eval mode, it is exactly ``nn.BatchNorm``. The mean and the
    (biased) variance are computed in two differentiable all-reduces over ranks
    (:func:`sum_over_ranks`), so gradients flow to every rank's inputs; the running
    variance uses the unbiased pooled variance, as ``nn.BatchNorm`` does (Ioffe & Szegedy
    2015, Algorithm 1 and 2).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)  # type: ignore[misc]
        self._check_input_dim(x)  # type: ignore[attr-defined]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.numel() // x.shape[1] * world_size()
        mean = sum_over_ranks(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = sum_over_ranks(centred.square().sum(dims)) / count
        if self.track_running_stats:  # type: ignore[attr-defined]
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[attr-defined]
                m = self.momentum  # type: ignore[attr-defined]
                m = 1.0 / float(self.num_batches_tracked) if m is None else m  # type: ignore[attr-defined]
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)  # type: ignore[attr-defined]
                self.running_var.mul_(1 - m).add_(var.detach() * count / max(count - 1, 1), alpha=m)  # type: ignore
        out = centred * torch.rsqrt(var + self.eps).view(shape)  # type: ignore[attr-defined]
        if self.affine:  # type: ignore[attr-defined]
            out = out * self.weight.view(shape) + self.bias.view(shape)  # type: ignore[attr-defined]
        return out


class SyncBatchNorm1d(_SyncBatchNorm, nn.BatchNorm1d):
    """:class:`nn.BatchNorm1d` pooled over ranks in training (same parameters and state)."""


class SyncBatchNorm2d(_SyncBatchNorm, nn.BatchNorm2d):
    """:class:`nn.BatchNorm2d` pooled over ranks in training (same parameters and state)."""


class _Step(nn.Module):
    """Wraps one player's loss as a module DistributedDataParallel can run."""

    def __init__(self, module: nn.Module, loss):
        super().__init__()
        self.module, self.loss = module, loss

    def forward(self, batch, generator):
        return self.loss(batch, generator)


def data_parallel(module: nn.Module, loss) -> Callable:
    """``loss`` as a callable whose backward averages ``module``'s gradients over ranks
    (DistributedDataParallel); ``loss`` itself with one process."""
    if world_size() == 1:
        return loss
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    # Buffers (batch-norm statistics) are kept equal by the synchronised batch norm, so
    # DDP need not broadcast them before every forward (the option was renamed in torch 2.13).
    option = (
        "forward_sync_buffers"
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
        else "broadcast_buffers"
    )
    return DistributedDataParallel(_Step(module, loss), **{option: False})
