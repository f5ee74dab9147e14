"""The one Trainer: it steps each player of a model, seeds, logs, checkpoints and resumes.

It knows nothing about model families. Per iteration it runs every player of the model
in order, each for ``player.steps`` steps; a player that ``uses_data`` draws a new batch
per step, holding a batch of each stream it reads. An epoch is a pass over the training
split of the model's first stream (the last partial batch dropped); the other streams
pass over their own splits at their own pace. Training length is counted in iterations,
derived from epochs or examples seen.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import (
    Checkpoint,
    checkpoint_dirs,
    flatten_optimizer,
    latest_checkpoint,
    save_checkpoint,
    unflatten_optimizer,
)
from .config import TrainConfig
from .data.batches import StreamOrder
from .data.datasets import Dataset
from .distributed import resolve_device
from .errors import CheckpointError, ConfigError, DataError, Interrupted, TrainingDiverged, option
from .models.capabilities import ClosedForm, require
from .models.contract import Batch, GenerativeModel, StreamBatch
from .rundir import RunDir
from .seeds import derive, generator
from .stopflag import StopFlag
from .validation import BestWeights, as_streams, evaluate_split
from .viz import save_samples

PROGRESS_SECONDS = 30.0  # between progress lines when stderr is not a terminal


def lr_decay_factor(schedule: str, progress: float) -> float:
    """The factor on every base learning rate at ``progress`` in [0, 1] of the run: 1 for
    "constant", 1 - progress for "linear", (1 + cos(pi * progress)) / 2 for "cosine"
    (Loshchilov & Hutter 2017, SGDR, eq. 5 with one cycle and a minimum of 0)."""
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


class _Rollback(Exception):
    """Raised inside the loop after the state was rolled back to a checkpoint."""


class Trainer:
    """Train ``model`` on ``data`` as ``config`` says, writing into ``run`` if given.

    Args:
        model: any registered :class:`GenerativeModel`.
        data: the model's one stream as a Dataset, or stream name -> Dataset. Each has a
            ``train`` split (``valid`` and ``test`` are evaluated at epoch ends and at the
            end, when the model reports anything).
        config: length, batch size (per stream), seed, device, logging.
        run: run folder for metrics.jsonl, checkpoints, samples and results.json; None
            trains in memory only.
        progress: show a progress bar (only on a terminal, only on rank 0).
        log: callable taking one line of text (default: stderr; only rank 0 logs).
        evaluate: evaluate the validation split at epoch ends and the test split at the
            end (False: train only, e.g. for timing).

    Under torchrun (:mod:`deepgen.distributed`) every rank runs a Trainer: ``batch_size``
    is the global batch, each rank trains on its rows, gradients are averaged by
    DistributedDataParallel, and only rank 0 writes to ``run``.

    Raises:
        ConfigError: the streams do not match the model's, or the batch does not split
            over processes. DataError: a stream is too small for one iteration.
    """

    def __init__(
        self,
        model: GenerativeModel,
        data: Dataset | dict[str, Dataset],
        config: TrainConfig,
        run: RunDir | None = None,
        progress: bool = True,
        log=None,
        evaluate: bool = True,
    ):
        self.model, self.config, self.run = model, config, run
        self.streams = as_streams(model, data)
        model.check_data(self.streams)
        self.progress, self.evaluate = progress, evaluate
        self.is_main = distributed.is_main()
        log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
        self.log = log if self.is_main else (lambda msg: None)
        self.device = resolve_device(config.device)
        distributed.shard_rows(config.batch_size)  # the global batch must split evenly
        self.players = model.players()
        self.closed_form = not self.players  # e.g. a GMM fitted by EM: one "iteration"
        if self.closed_form:
            require(model, ClosedForm, f"training a {model.family}, which has no players,")
        draws = {
            s: sum(
                p.steps
                for p in self.players
                if p.uses_data and (p.streams is None or s in p.streams)
            )
            for s in model.streams
        }
        self.draws_per_iteration = sum(draws.values())
        self.orders = {
            s: StreamOrder(
                len(self.streams[s]["train"]), config.batch_size, n, config.seed, s, self.device
            )
            for s, n in draws.items()
            if n > 0
        }
        if not self.closed_form and model.epoch_stream not in self.orders:
            raise ConfigError(
                f"no player of a {model.family} reads its first stream {model.epoch_stream!r}, "
                "whose passes count as epochs"
            )
        epoch_order = self.orders.get(model.epoch_stream)
        # Other streams may cycle through their passes; this one counts epochs.
        if epoch_order is not None and epoch_order.cyclic:
            raise DataError(
                f"stream {model.epoch_stream!r}: its training split has {epoch_order.n} "
                f"examples, fewer than one iteration needs ({epoch_order.draws} batches of "
                f"{config.batch_size}); lower {option('batch_size')}"
            )
        self.iters_per_epoch = (
            1 if self.closed_form else self.orders[model.epoch_stream].iterations_per_pass
        )
        unit, amount = config.length()
        per_iter = config.batch_size * max(1, self.draws_per_iteration)
        self.total_iterations = (
            1
            if self.closed_form
            else amount * self.iters_per_epoch
            if unit == "epochs"
            else math.ceil(amount / per_iter)
        )
        self.iteration = 0
        self.elapsed = 0.0
        self._last_line = time.monotonic()  # of the last progress line written without a terminal
        self._term_owners: dict[str, str] = {}  # training term -> the player whose bare name it is
        self.rollbacks = 0
        self.best = (
            BestWeights(model, self.players, self.streams, config.patience)
            if (config.keep_best or config.patience) and not self.closed_form and evaluate
            else None
        )

    @property
    def dataset(self) -> Dataset:
        """The first stream's dataset (the one epochs count passes over)."""
        return self.streams[self.model.epoch_stream]

    # --- state -------------------------------------------------------------------------
    def _state(self, optimizers, noise) -> tuple[dict, dict]:
        tensors, structures = {}, {}
        for name, opt in optimizers.items():
            t, s = flatten_optimizer(name, opt.state_dict())
            tensors.update(t)
            structures[name] = s
        if self.best is not None:
            tensors.update(self.best.tensors())
        tensors["rng/noise"] = noise.get_state()
        tensors["rng/torch"] = torch.get_rng_state()
        state = {
            "iteration": self.iteration,
            "epoch": self.iteration / self.iters_per_epoch,
            "images_seen": self.images_seen,
            "total_iterations": self.total_iterations,
            "elapsed_seconds": self.elapsed,
            "optimizers": structures,
            "family": self.model.family,
            # each stream's sampler position: a function of the iteration, recorded to be read
            "streams": {
                s: dict(zip(("pass", "batch"), o.position(self.iteration)))
                for s, o in self.orders.items()
            },
        }
        if self.best is not None:
            state["best"] = self.best.state()
        return state, tensors

    def _restore(self, ckpt: Checkpoint, optimizers, noise) -> None:
        try:
            self.model.load_state_dict(ckpt.model)
            for name, opt in optimizers.items():
                opt.load_state_dict(
                    unflatten_optimizer(name, ckpt.state["optimizers"][name], ckpt.tensors)
                )
            noise.set_state(ckpt.tensors["rng/noise"])
            if self.best is not None:
                self.best.load(ckpt.state.get("best", {}), ckpt.tensors)
            torch.set_rng_state(ckpt.tensors["rng/torch"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise CheckpointError(f"{ckpt.path} does not fit this model: {first}") from None
        self.iteration = ckpt.iteration
        self.elapsed = float(ckpt.state.get("elapsed_seconds", 0.0))

    @property
    def images_seen(self) -> int:
        """Training examples drawn so far, over every stream."""
        if self.closed_form:
            return self.iteration * len(self.dataset["train"])
        return self.iteration * self.draws_per_iteration * self.config.batch_size

    def checkpoint(self, optimizers, noise):
        """Write a checkpoint of the current state into the run folder; returns its path
        (None when training without a run folder)."""
        if self.run is None or not self.is_main:
            return None
        state, tensors = self._state(optimizers, noise)
        return save_checkpoint(
            self.run.path,
            self.model.state_dict(),
            tensors,
            state,
            keep=self.config.keep_checkpoints,
        )

    # --- the loop ----------------------------------------------------------------------
    def fit(self, resume: Checkpoint | None = None) -> GenerativeModel:
        """Train to the configured length; returns the model.

        Raises:
            TrainingDiverged: a loss became NaN or infinite, or a gradient norm exceeded
                ``max_grad_norm``, and the policy is ``stop`` or the rollbacks ran out (the
                last checkpoint is kept).
            Interrupted: SIGINT/SIGTERM; a checkpoint of the last whole iteration is written.
        """
        cfg, model = self.config, self.model
        model.to(self.device).train()
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.compile:
            for network in model.children():  # in place: the losses call these modules
                network.compile()
        self.train_data = {name: self._on_device(ds["train"]) for name, ds in self.streams.items()}
        model.requires_grad_(True)
        optimizers = {p.name: p.make_optimizer(p.module.parameters()) for p in self.players}
        for opt in optimizers.values():
            for group in opt.param_groups:  # saved with the optimiser, so resuming keeps it
                group.setdefault("base_lr", group["lr"])
        noise = generator(cfg.seed, "noise", device=self.device)
        with torch.random.fork_rng(devices=[]):  # the global generator, seeded and saved too
            torch.manual_seed(derive(cfg.seed, "global"))
            if resume is not None:
                self._restore(resume, optimizers, noise)
                if self.run is not None and self.is_main:
                    self.run.truncate_metrics(self.iteration)
                if self.best is not None and self.best.should_stop:
                    self.total_iterations = (
                        self.iteration
                    )  # it had stopped early: nothing left to do
            if self.closed_form:
                return self._fit_closed_form(noise)
            self._loop(optimizers, noise)
        return model

    def _loop(self, optimizers, noise) -> None:
        """Iterations until the configured length, rolling back on divergence if asked."""
        cfg = self.config
        # metric -> its per-example values of every step since the last log record, reduced
        # only when a record is written (one op per metric, not four per metric and step)
        pending: dict[str, list[torch.Tensor]] = defaultdict(list)
        bar = tqdm(
            total=self.total_iterations,
            initial=self.iteration,
            unit="it",
            file=sys.stderr,
            disable=None if self.progress and self.is_main else True,
            dynamic_ncols=True,
            leave=False,
        )
        self._wrap_players()
        if cfg.on_divergence == "rollback" and self.run is not None and self.iteration == 0:
            self.checkpoint(optimizers, noise)  # something to roll back to from the first step
        self._tick = (time.perf_counter(), self.iteration)
        with StopFlag() as stop:
            while self.iteration < self.total_iterations:
                try:
                    self._iteration(optimizers, noise, pending, stop, bar)
                except _Rollback:
                    self._wrap_players()  # DDP's reducer state is stale after an unfinished step
                    pending.clear()
                    bar.reset(total=self.total_iterations)
                    bar.update(self.iteration)
                    self._tick = (time.perf_counter(), self.iteration)
                    continue
            bar.close()
            # A stop asked for during the last iteration, which the loop no longer checks:
            if distributed.any_rank(stop.requested, self.device):
                if self.run is None:
                    raise Interrupted(
                        f"stopped by a signal during the last iteration ({self.iteration})"
                    )
                raise Interrupted(
                    f"stopped by a signal during the last iteration ({self.iteration}), whose "
                    "checkpoint is complete; the test split was not evaluated: `deepgen train "
                    f"--resume {self.run.path}` evaluates it and writes results.json"
                )
            # End with the best weights; the checkpoints keep the training ones.
            if self.best is not None:
                self.log(self.best.restore())
            self._finish()
            if stop.requested:
                self.log(
                    "a stop signal arrived during the final test evaluation, which was "
                    "finished and written"
                )

    def _on_device(self, split) -> tuple:
        """A training split's (x, labels, lengths) on the Trainer's device."""
        move = lambda t: None if t is None else t.to(self.device)
        return move(split.x), move(split.labels), move(split.lengths)

    def _wrap_players(self) -> None:
        """Each player's loss, through DistributedDataParallel when there are several ranks."""
        self.model.requires_grad_(True)  # DDP registers the parameters that require gradients
        self.losses = {p.name: distributed.data_parallel(p.module, p.loss) for p in self.players}

    def _batch(self, player, drawn: dict[str, int], noise: torch.Generator) -> Batch:
        """The next global batch of each stream ``player`` reads, preprocessed (every rank
        draws the same binarisation), and this rank's rows of it. ``drawn`` counts the
        draws of each stream in this iteration so far."""
        world = distributed.world_size()
        rows = distributed.shard_rows(self.config.batch_size) if world > 1 else slice(None)
        shard = (distributed.rank(), world)
        streams = {}
        for name in player.streams or self.model.streams:
            idx = self.orders[name].indices(self.iteration, drawn[name])
            drawn[name] += 1
            x, y, lengths = (
                None if t is None else t.index_select(0, idx) for t in self.train_data[name]
            )
            x = self.model.preprocess(x, noise)
            if self.config.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            pick = lambda t: None if t is None else t[rows]
            streams[name] = StreamBatch(x[rows], pick(y), pick(lengths), shard)
        return Batch(streams, self.iteration, self.iteration / self.total_iterations)

    def _iteration(self, optimizers, noise, pending, stop, bar) -> None:
        """One iteration: every player's steps, then logging and epoch-end work."""
        cfg = self.config
        if distributed.any_rank(stop.requested, self.device):
            path = self.checkpoint(optimizers, noise)
            bar.close()
            where = f"; checkpoint {path}" if path else ""
            raise Interrupted(
                f"interrupted at iteration {self.iteration}{where}; continue with "
                f"`deepgen train --resume {self.run.path if self.run else 'RUN'}`"
            )
        progress = self.iteration / self.total_iterations
        decay = lr_decay_factor(cfg.lr_decay, progress)
        for player in self.players:
            scale = decay * (1.0 if player.lr_scale is None else player.lr_scale(progress))
            if cfg.lr_decay != "constant" or player.lr_scale is not None:
                for group in optimizers[player.name].param_groups:
                    group["lr"] = group["base_lr"] * scale
        batch, drawn = None, dict.fromkeys(self.orders, 0)
        for player in self.players:
            if player.active is not None and not player.active(progress):
                continue
            if len(self.players) > 1:
                for other in self.players:
                    other.module.requires_grad_(other is player)
            for _ in range(player.steps):
                if player.uses_data or batch is None:
                    batch = self._batch(player, drawn, noise)
                out = self.losses[player.name](batch, noise)
                loss = out["loss"].mean()
                global_loss = float(distributed.all_mean(loss.detach()))  # every rank decides alike
                if not math.isfinite(global_loss):
                    self._diverged(
                        f"the {player.name} loss is {global_loss}", optimizers, noise, bar
                    )
                optimizers[player.name].zero_grad(set_to_none=True)
                loss.backward()
                if cfg.max_grad_norm is not None:
                    norm = float(
                        torch.nn.utils.get_total_norm(
                            [q.grad for q in player.module.parameters() if q.grad is not None]
                        )
                    )
                    if not norm <= cfg.max_grad_norm:  # also catches NaN
                        self._diverged(
                            f"the {player.name} gradient norm is {norm:.3g} "
                            f"(max_grad_norm {cfg.max_grad_norm:g})",
                            optimizers,
                            noise,
                            bar,
                        )
                optimizers[player.name].step()
                if player.after_step is not None:
                    player.after_step()
                for key, value in out.items():
                    name = self._metric_name(player.name, key)
                    pending[name].append(value.detach().reshape(-1))
        self.iteration += 1
        bar.update(1)
        end_of_epoch = self.iteration % self.iters_per_epoch == 0
        if (
            self.iteration % cfg.log_every == 0
            or end_of_epoch
            or self.iteration == self.total_iterations
        ):
            now = time.perf_counter()
            tick, tick_iter = self._tick
            self.elapsed += now - tick
            speed = (
                (self.iteration - tick_iter)
                * self.draws_per_iteration
                * cfg.batch_size
                / max(now - tick, 1e-9)
            )
            # Every step of a metric has as many values (a batch, or one), so the mean over
            # all of them is the mean of the steps' means.
            means = torch.stack([torch.cat(v).float().mean() for v in pending.values()])
            record = dict(zip(pending, distributed.all_mean(means).tolist()))
            pending.clear()
            self._log_train(record, speed, bar)
            self._tick = (time.perf_counter(), self.iteration)
        if end_of_epoch or self.iteration == self.total_iterations:
            t0 = time.perf_counter()
            self._end_of_epoch()
            if (
                self.best is not None
                and self.best.should_stop
                and self.iteration < self.total_iterations
            ):
                self.log(f"early stopping: no better validation value for {self.best.stale} epochs")
                self.total_iterations = self.iteration
            self.checkpoint(optimizers, noise)
            self._tick = (
                self._tick[0] + time.perf_counter() - t0,
                self._tick[1],
            )  # images/s: training only

    def _metric_name(self, player: str, term: str) -> str:
        """The name of a player's training term in the records: ``PLAYER/loss`` for the
        objective each player minimises, the bare term otherwise (``elbo``, ``kl``,
        ``d_real``), the name the validation records use for the same quantity. A term a
        second player also reports keeps that player's prefix (``PLAYER/term``)."""
        if term == "loss":
            return f"{player}/loss"
        owner = self._term_owners.setdefault(term, player)
        return term if owner == player else f"{player}/{term}"

    def _diverged(self, what: str, optimizers, noise, bar) -> None:
        """Stop, or roll back to the newest checkpoint with lower learning rates."""
        cfg = self.config
        where = f"{what} at iteration {self.iteration}"
        kept = self._what_is_kept()
        if cfg.on_divergence == "stop" or self.run is None:
            bar.close()
            raise TrainingDiverged(
                f"{where}; {kept}; lower the learning rate ({option('lr')}) and resume, or "
                f"train with {option('on_divergence', 'rollback')}"
            )
        if self.rollbacks >= cfg.max_rollbacks:
            bar.close()
            raise TrainingDiverged(f"{where}, after {self.rollbacks} rollbacks; {kept}")
        # The checkpoint holds the learning rates of its time; earlier rollbacks' reductions
        # must survive the restore, so the new rates come from the current ones.
        current = {
            name: [(g["lr"], g["base_lr"]) for g in opt.param_groups]
            for name, opt in optimizers.items()
        }
        ckpt = latest_checkpoint(self.run.path, warn=self.log)
        self._restore(ckpt, optimizers, noise)
        for name, opt in optimizers.items():
            for group, (lr, base_lr) in zip(opt.param_groups, current[name]):
                group["lr"] = lr * cfg.rollback_lr_factor
                group["base_lr"] = base_lr * cfg.rollback_lr_factor
        self.rollbacks += 1
        if self.is_main:
            self.run.truncate_metrics(self.iteration)
        self.log(
            f"{where}; rolled back to iteration {self.iteration} with learning rates x{cfg.rollback_lr_factor:g} "
            f"(rollback {self.rollbacks} of {cfg.max_rollbacks})"
        )
        raise _Rollback

    def _what_is_kept(self) -> str:
        """What a stopped run leaves to continue from, for its message."""
        if self.run is None:
            return "nothing was saved (no run folder)"
        dirs = checkpoint_dirs(self.run.path)
        if not dirs:
            return "no checkpoint was written yet, so a resume starts from iteration 0"
        return f"the last checkpoint ({dirs[0].name}) is kept"

    def _fit_closed_form(self, noise: torch.Generator) -> GenerativeModel:
        """Models without players (fitted in closed form, e.g. by EM) take one "iteration"."""
        if self.iteration < 1:
            start = time.perf_counter()
            x = self.model.preprocess(self.train_data[self.model.epoch_stream][0], noise)
            note = self.model.fit_closed_form(x, seed=self.config.seed)
            if note:
                self.log(f"{self.model.family}: {note}")
            self.iteration, self.elapsed = 1, time.perf_counter() - start
            self._end_of_epoch()
            self.checkpoint({}, noise)
        self._finish()
        return self.model

    def _log_train(self, record: dict[str, float], speed: float, bar) -> None:
        record.update(
            iteration=self.iteration,
            epoch=self.iteration / self.iters_per_epoch,
            images=self.images_seen,
            images_per_second=speed,
            split="train",
            time=round(self.elapsed, 3),
        )
        if self.run is not None and self.is_main:
            self.run.append_metrics(record)
        shown = {k: f"{v:.3g}" for k, v in record.items() if k in self._term_owners or "/" in k}
        shown = {k: v for k, v in shown.items() if not k.endswith("/loss")} or shown
        bar.set_postfix(shown | {"img/s": f"{speed:.0f}"}, refresh=False)
        now = time.monotonic()
        if bar.disable and self.progress and now - self._last_line >= PROGRESS_SECONDS:
            # no terminal (nohup, a batch job): a plain line now and then instead of a bar
            self._last_line = now
            values = "  ".join(f"{k} {v}" for k, v in shown.items())
            self.log(
                f"iteration {self.iteration}/{self.total_iterations} (epoch "
                f"{record['epoch']:.3g})  {values}  {speed:.0f} img/s"
            )

    def _end_of_epoch(self) -> None:
        cfg = self.config
        epoch = self.iteration / self.iters_per_epoch
        line = f"epoch {epoch:.3g}/{self.total_iterations / self.iters_per_epoch:.3g}"
        if self.evaluate and all("valid" in ds.splits for ds in self.streams.values()):
            stats = evaluate_split(
                self.model,
                self.streams,
                "valid",
                derive(cfg.seed, "valid"),
                self.device,
                limit=cfg.valid_images,
            )
            if stats:
                record = {k: v["mean"] for k, v in stats.items()}
                record.update(
                    iteration=self.iteration, epoch=epoch, images=self.images_seen, split="valid"
                )
                if self.run is not None and self.is_main:
                    self.run.append_metrics(record)
                line += "  valid " + "  ".join(
                    f"{k} {v:.4g}" for k, v in record.items() if k in stats
                )
                if self.best is not None:
                    self.best.update(stats, epoch)
        if self.run is not None and self.is_main:
            self._save_preview()
        self.log(line)

    def _save_preview(self) -> None:
        """The sample grid of this epoch (fixed noise), or a scatter over the data for points."""
        held_out = {
            name: ds["valid" if "valid" in ds.splits else "train"].x
            for name, ds in self.streams.items()
        }
        points = self.dataset.is_points
        self.model.eval()
        samples = self.model.preview(
            held_out,
            2500 if points else 64,
            generator(self.config.seed, "preview", device=self.device),
        )
        self.model.train()
        if samples is None:
            return
        reference = held_out[self.model.epoch_stream] if points else None
        save_samples(
            samples,
            self.run.samples_dir / f"iteration-{self.iteration:09d}.png",
            self.model.grid_nrow,
            reference,
        )

    def _finish(self) -> None:
        if (
            self.run is None
            or not self.evaluate
            or not all("test" in ds.splits for ds in self.streams.values())
        ):
            return
        stats = evaluate_split(
            self.model, self.streams, "test", derive(self.config.seed, "test"), self.device
        )
        key, unit = self.model.summary
        results = {
            "split": "test",
            "metrics": stats,
            "iteration": self.iteration,
            "epochs": self.iteration / self.iters_per_epoch,
            "images_seen": self.images_seen,
            "seed": self.config.seed,
            "dataset": self.dataset.name,
            "streams": {name: ds.name for name, ds in self.streams.items()},
            "protocol": self.model.evaluate_protocol,
            "units": self.model.units,
            "training_seconds": round(self.elapsed, 2),
        }
        if self.best is not None:
            results["selected"] = self.best.record  # player -> validation metric, value, epoch
        if key in stats:
            results["summary"] = {"metric": key, "unit": unit, **stats[key]}
            self.log(f"test {key}: {stats[key]['mean']:.4g} ± {stats[key]['stderr']:.2g} {unit}")
        if self.is_main:
            self.run.write_results(results)
