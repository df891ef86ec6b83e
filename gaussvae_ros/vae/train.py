"""Training loop: fixed seeds, resumable, TensorBoard, optional DDP under ``torchrun``.

Output directory layout (``gaussvae train --output DIR``):

* ``config.yaml``: the resolved config (defaults filled, ``in_channels``/``seq_len`` from the data);
* ``logs/``: TensorBoard event files (per-step ``train_step/*`` every ``log_every`` steps; per-epoch
  ``epoch_train/*`` and ``epoch_val/*`` incl. ``group/<name>``, and ``epoch_val_natural/*`` /
  ``epoch_val_natural_slot_mean/*``: position, log-scale, rotation, covariance and colour errors of
  the decoded Gaussians and of the slot-mean predictor, whatever the representation; the
  validation split's ``baseline_val/*`` mean-predictor errors at step 0);
* ``metrics.jsonl``: one JSON line per finished epoch (the same per-epoch numbers: ``train``,
  ``val``, ``val_natural``);
* ``checkpoint.pt``: latest training checkpoint (model, optimizer, step, RNG states, a mid-epoch
  checkpoint's running loss sums), written at epoch ends, every ``checkpoint_every`` steps and when
  ``max_steps`` is reached; every checkpoint first checks that all processes hold the same weights;
* ``model.pt``: latest model file for inference (:func:`gaussvae_ros.vae.checkpoint.load_model`);
* ``eval_val.json``: model vs mean predictors on the validation split at the end
  (:mod:`gaussvae_ros.vae.reconstruction`: per-group errors, and the PSNR of the decoded Gaussians'
  renderings against the inputs' at ``loss.image_size``).

Determinism and resume: weights are initialized from ``seed``; each epoch's data order comes from
:class:`~torch.utils.data.DistributedSampler` seeded with ``seed`` and the epoch; sampling noise
comes from each process's torch RNG, saved in the checkpoint. Resuming skips the batches of the
current epoch already done, so an interrupted-and-resumed run takes the same steps as an
uninterrupted one.

Distributed: when ``WORLD_SIZE`` > 1 (``torchrun``), the process group is initialized with NCCL
if CUDA is usable, else gloo; ``train.batch_size`` is the global batch, split evenly over the
processes; only rank 0 logs and writes files.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from torch.utils.tensorboard import SummaryWriter

from .checkpoint import (capture_rng, content_digest, load_checkpoint, load_model, restore_rng, save_checkpoint,
                         save_model)
from .config import ExperimentConfig, save_config
from .data import AUGMENTATIONS, GaussianParamDataset, dihedral_views, load_param_set, split_indices
from .reconstruction import evaluate_against_mean, slot_mean_of
from .losses import RenderedImageLoss, VAELoss
from .networks import build_model, count_parameters, init_slot_bias
from .features import ParamTransform


@dataclass
class DistContext:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistContext:
    """Read RANK/WORLD_SIZE/LOCAL_RANK and join the process group if there is more than one process."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"train.device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is cuda but no CUDA device is available")
    use_cuda = torch.cuda.is_available() and device != "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        return DistContext(rank, world, local, torch.device("cuda", local))
    return DistContext(rank, world, local, torch.device("cpu"))


def _log(ctx: DistContext, message: str) -> None:
    if ctx.is_main:
        print(message, file=sys.stderr, flush=True)


def _mean_losses(criterion: VAELoss, model: torch.nn.Module, features: torch.Tensor, step: int,
                 device: torch.device, batch_size: int = 256) -> dict[str, float]:
    """Deterministic (z = mu) losses over ``features [M, F, N]``, averaged per sample."""
    model = getattr(model, "module", model)
    model.eval()
    totals: dict[str, float] = {}
    with torch.no_grad():
        for i in range(0, features.shape[0], batch_size):
            x = features[i:i + batch_size].to(device)
            for k, v in criterion(model(x), x, step).items():
                totals[k] = totals.get(k, 0.0) + float(v) * x.shape[0]
    model.train()
    return {k: v / features.shape[0] for k, v in totals.items()}


def _gather(ctx: DistContext, value) -> list:
    """``value`` of every process, in rank order."""
    if not ctx.distributed:
        return [value]
    values: list = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def _gather_rng(ctx: DistContext) -> list[dict]:
    return _gather(ctx, capture_rng())


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers, bit for bit (hex; :func:`.checkpoint.content_digest`)."""
    return content_digest(dict(getattr(model, "module", model).state_dict()))


def _check_ranks_agree(ctx: DistContext, model: torch.nn.Module) -> str:
    """The weights' digest, after checking that every process holds the same weights (DDP keeps them
    identical: same start, all-reduced gradients, same optimizer steps). RuntimeError if not."""
    mine = weights_digest(model)
    digests = _gather(ctx, mine)
    if len(set(digests)) != 1:
        raise RuntimeError(f"the {ctx.world_size} training processes hold different weights "
                           f"(digests {', '.join(d[:12] for d in digests)}): gradients are not being synchronized")
    return mine


def _resume_state(output: Path, config: ExperimentConfig, ctx: DistContext) -> dict:
    ckpt = load_checkpoint(output / "checkpoint.pt")
    stored: ExperimentConfig = ckpt["config"]
    for section in ("model", "data", "loss"):
        given, saved = getattr(config, section).__dict__, getattr(stored, section).__dict__
        diff = sorted(k for k in given if k not in ("in_channels", "seq_len") and given[k] != saved[k])
        if diff:
            raise ValueError(f"cannot resume: config {section}.{diff[0]} is {given[diff[0]]!r} but the checkpoint "
                             f"was trained with {saved[diff[0]]!r}")
    progress, tc = ckpt["progress"], config.train
    for key in ("seed", "batch_size"):  # they fix the data order and the place to continue from
        given, saved = getattr(tc, key), getattr(stored.train, key)
        if given != saved:
            raise ValueError(f"cannot resume: config train.{key} is {given!r} but the checkpoint was trained with "
                             f"{saved!r} (the rest of the run would see other batches)")
    steps_done = progress["step"] >= (tc.max_steps if tc.max_steps > 0 else math.inf)
    if steps_done or progress["epoch"] >= tc.epochs:
        advice = "a larger --max-steps" if steps_done else "a larger train.epochs (--set train.epochs=N)"
        raise ValueError(f"nothing to resume: the run in {output} already reached step {progress['step']}, epoch "
                         f"{progress['epoch']} (train.max_steps {tc.max_steps}, train.epochs {tc.epochs}); "
                         f"pass {advice} to train on")
    if progress.get("world_size", 1) != ctx.world_size and progress.get("batch_in_epoch", 0):
        raise ValueError(f"checkpoint was written mid-epoch by {progress.get('world_size')} process(es); "
                         f"resume with the same number (this run has {ctx.world_size})")
    return ckpt


def _initial_weights(path: str | Path, config: ExperimentConfig, transform: ParamTransform) -> dict:
    """Weights of the model file ``path`` for a new run of ``config`` (ValueError unless the
    architecture and the feature representation match)."""
    model, stored, stored_transform, _ = load_model(path)
    if stored.model.__dict__ != config.model.__dict__:
        raise ValueError(f"--init {path}: its model config differs from this run's ({stored.model} vs {config.model})")
    if stored_transform.to_dict() != transform.to_dict():
        raise ValueError(f"--init {path}: its feature transform {stored_transform.to_dict()} differs from this "
                         f"run's {transform.to_dict()}")
    return model.state_dict()


def train(config: ExperimentConfig, output: str | Path, resume: bool = False, max_steps: int | None = None,
          init: str | Path | None = None) -> dict:
    """Train (or resume) a VAE as configured; returns a JSON-able summary (see the module docstring).

    ``init``: a model file whose weights start a new run (fine-tuning, e.g. through the renderer
    after training in parameter space); ignored when resuming.
    """
    output = Path(output)
    _check_run(config, output, resume, max_steps)
    ctx = setup_distributed(config.train.device)
    if config.train.batch_size % ctx.world_size:
        raise ValueError(f"train.batch_size {config.train.batch_size} is not divisible by {ctx.world_size} processes")
    ckpt = _resume_state(output, config, ctx) if resume else None
    data = _training_data(config, ckpt)
    run = _start_run(config, output, ctx, data, ckpt, init)
    writer = _open_writer(run, data, resumed=ckpt is not None)
    _log(ctx, f"gaussvae train: {config.model.name}, {count_parameters(run.model):,} parameters, "
              f"{len(data.train_set)} train / {len(data.splits['val'])} val samples, {ctx.world_size} process(es) on "
              f"{ctx.device}, representation {data.transform.representation}")
    started = time.monotonic()
    _train_epochs(run, data, writer)
    summary: dict = {"output": str(output), "model": config.model.name, "parameters": count_parameters(run.model),
                     "step": run.step, "epoch": run.epoch, "world_size": ctx.world_size,
                     "weights_sha256": _check_ranks_agree(ctx, run.model),
                     "seconds": round(time.monotonic() - started, 2), "train": run.last_train, "val": run.last_val}
    if ctx.is_main:
        _finish(run, data, summary)
        writer.close()
    if ctx.distributed:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def _check_run(config: ExperimentConfig, output: Path, resume: bool, max_steps: int | None) -> None:
    """The run's settings and its output folder checked (``max_steps`` replaces ``train.max_steps``)."""
    if max_steps is not None:
        if max_steps < 0:
            raise ValueError(f"max_steps must be >= 0, got {max_steps}")
        config.train.max_steps = max_steps
    tc = config.train
    if tc.batch_size <= 0 or tc.epochs <= 0 or tc.log_every <= 0 or tc.checkpoint_every < 0:
        raise ValueError("train.batch_size, epochs and log_every must be positive, checkpoint_every >= 0")
    has_checkpoint = (output / "checkpoint.pt").exists()
    if has_checkpoint and not resume:
        raise ValueError(f"{output} already holds a training run; pass --resume or choose a new --output")
    if resume and not has_checkpoint:
        raise ValueError(f"nothing to resume: {output / 'checkpoint.pt'} does not exist")


@dataclass
class _Data:
    """The run's data (identical on every rank): split, transform, datasets, slot means."""

    splits: dict
    transform: ParamTransform
    train_set: GaussianParamDataset
    val_set: GaussianParamDataset | None
    slot_mean: np.ndarray


def _training_data(config: ExperimentConfig, ckpt: dict | None) -> _Data:
    """Data, split and parameter-space statistics (a resumed run keeps its transform and slot means);
    sets the model config's input channels and sequence length."""
    params = load_param_set(config.data.path)
    splits = split_indices(len(params), config.data.val_fraction, config.data.test_fraction, config.data.split_seed)
    if config.data.augment not in AUGMENTATIONS:
        raise ValueError(f"data.augment must be one of {AUGMENTATIONS}, got {config.data.augment!r}")
    train_params = params[splits["train"]]
    if config.data.augment == "dihedral":
        train_params = dihedral_views(train_params)
    if ckpt is not None:
        transform: ParamTransform = ckpt["transform"]
    else:
        transform = ParamTransform(config.data.representation, config.data.log_scale, config.data.canonical,
                                   config.data.normalization, params.shape[2] - 5).fit(train_params)
    train_set = GaussianParamDataset(train_params, transform)
    val_set = GaussianParamDataset(params[splits["val"]], transform) if len(splits["val"]) else None
    slot_mean = ckpt["slot_mean"] if ckpt is not None else slot_mean_of(train_set.features)
    config.model.in_channels, config.model.seq_len = transform.num_features, params.shape[1]
    return _Data(splits, transform, train_set, val_set, slot_mean)


@dataclass
class _Run:
    """A training run's parts and its progress: where the loop is (``step``, ``epoch``), the running
    loss sums of the current epoch (``keys``, ``sums``) and the last epoch's averages. The loop
    updates it; :meth:`checkpoint` saves it."""

    config: ExperimentConfig
    output: Path
    ctx: DistContext
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    criterion: VAELoss
    progress: dict
    step: int = 0
    epoch: int = 0
    keys: list[str] = field(default_factory=list)
    sums: torch.Tensor | None = None
    last_train: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.step, self.epoch = self.progress["step"], self.progress["epoch"]

    def checkpoint(self, data: _Data, batch_in_epoch: int) -> None:
        """Save the checkpoint and the model file (``batch_in_epoch`` > 0: mid-epoch, with each
        process's running loss sums, so the resumed epoch averages all its batches)."""
        ctx = self.ctx
        if ctx.distributed:  # one process has nothing to disagree with
            _check_ranks_agree(ctx, self.model)
        rng_states = _gather_rng(ctx)
        partial = {"keys": self.keys, "sums": self.sums.tolist()} if batch_in_epoch and self.sums is not None else None
        partials = _gather(ctx, partial)
        if ctx.is_main:
            state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": batch_in_epoch,
                     "world_size": ctx.world_size, "epoch_sums": partials if any(partials) else []}
            save_checkpoint(self.output / "checkpoint.pt", self.model, self.optimizer, self.config, data.transform,
                            data.slot_mean, state, rng_states)
            save_model(self.output / "model.pt", self.model, self.config, data.transform, data.slot_mean)


def _start_run(config: ExperimentConfig, output: Path, ctx: DistContext, data: _Data, ckpt: dict | None,
               init: str | Path | None) -> _Run:
    """Model, optimizer and loss (from the checkpoint, ``init``'s weights or new), and the random
    generators where the run stands."""
    tc = config.train
    torch.manual_seed(tc.seed)
    model = build_model(config.model)
    model.attach_transform(data.transform)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"].state_dict())
    elif init is not None:
        model.load_state_dict(_initial_weights(init, config, data.transform))
    else:
        init_slot_bias(model, data.transform, data.slot_mean)
    model.to(ctx.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        for group in optimizer.param_groups:  # the config's (possibly changed) learning rate wins
            group["lr"], group["weight_decay"] = tc.lr, tc.weight_decay
    net = DistributedDataParallel(model) if ctx.distributed else model
    lc = config.loss
    image_loss = RenderedImageLoss(data.transform, lc.image_size) if lc.image_weight > 0 else None
    criterion = VAELoss(data.transform.groups, lc.beta, lc.kl_anneal_steps, lc.kl_anneal_start, lc.group_weights,
                        param_weight=lc.param_weight, image_loss=image_loss, image_weight=lc.image_weight)

    progress = dict(ckpt["progress"]) if ckpt is not None else {"step": 0, "epoch": 0, "batch_in_epoch": 0}
    if ckpt is not None and ckpt["progress"].get("world_size", 1) == ctx.world_size:
        restore_rng(ckpt["rng"][ctx.rank])
    else:
        seed = tc.seed + 1 + ctx.rank + 7919 * progress["step"]
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
    return _Run(config, output, ctx, model, net, optimizer, criterion, progress)


def _open_writer(run: _Run, data: _Data, resumed: bool):
    """The main process's TensorBoard writer (None on the others), with the mean predictors' baseline
    logged once at the start of a new run; writes ``config.yaml``."""
    if not run.ctx.is_main:
        return None
    run.output.mkdir(parents=True, exist_ok=True)
    save_config(run.config, run.output / "config.yaml")
    writer = SummaryWriter(str(run.output / "logs"), purge_step=run.progress["step"] if resumed else None)
    if not resumed and data.val_set is not None:
        base = evaluate_against_mean(run.model, data.transform, data.slot_mean, data.val_set.params)
        for group, row in base["groups"].items():
            writer.add_scalar(f"baseline_val/slot_mean/{group}", row["slot_mean"], 0)
            writer.add_scalar(f"baseline_val/global_mean/{group}", row["global_mean"], 0)
    return writer


def _train_epochs(run: _Run, data: _Data, writer) -> None:
    """The loop: epochs of batches until ``train.epochs`` or ``train.max_steps``, checkpointing every
    ``checkpoint_every`` steps (mid-epoch), at each epoch's end and where ``max_steps`` stops it."""
    tc, ctx = run.config.train, run.ctx
    sampler = DistributedSampler(data.train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=tc.seed, drop_last=False)
    per_rank = tc.batch_size // ctx.world_size
    stop_at = tc.max_steps if tc.max_steps > 0 else math.inf
    skip = run.progress["batch_in_epoch"]
    carried = run.progress.get("epoch_sums") or []  # running sums of the epoch a mid-epoch checkpoint cut
    resumed = carried[ctx.rank] if skip and len(carried) == ctx.world_size else None
    while run.epoch < tc.epochs and run.step < stop_at:
        sampler.set_epoch(run.epoch)
        order = list(sampler)
        batches = [order[i:i + per_rank] for i in range(0, len(order), per_rank)]
        run.sums = None
        if resumed:
            run.keys, run.sums = list(resumed["keys"]), torch.tensor(resumed["sums"], dtype=torch.float32)
        resumed = None
        stopped = False
        for b in range(skip, len(batches)):
            _train_step(run, data.train_set.features[batches[b]].to(ctx.device), writer)
            if run.step >= stop_at:
                if b + 1 < len(batches):  # mid-epoch; at the epoch's last batch the epoch end still runs
                    run.checkpoint(data, b + 1)
                    stopped = True
                break
            if tc.checkpoint_every and run.step % tc.checkpoint_every == 0 and b + 1 < len(batches):
                run.checkpoint(data, b + 1)
        if stopped:
            break
        _end_epoch(run, data, writer)
        run.epoch += 1
        skip = 0
        run.checkpoint(data, 0)


def _train_step(run: _Run, x: torch.Tensor, writer) -> None:
    """One optimizer step on batch ``x``, its losses added to the epoch's running sums."""
    tc = run.config.train
    losses = run.criterion(run.net(x), x, run.step)
    run.optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    if tc.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), tc.grad_clip)
    run.optimizer.step()
    run.step += 1
    run.keys = sorted(losses)
    values = torch.stack([losses[k].detach().float().cpu() for k in run.keys])
    row = torch.cat([values * x.shape[0], torch.tensor([float(x.shape[0])])])
    run.sums = row if run.sums is None else run.sums + row
    if writer is not None and run.step % tc.log_every == 0:
        for k, v in zip(run.keys, values.tolist()):
            writer.add_scalar(f"train_step/{k}", v, run.step)


def _end_epoch(run: _Run, data: _Data, writer) -> None:
    """End of epoch: training losses averaged over all processes, validation, logs."""
    ctx, step = run.ctx, run.step
    if run.sums is not None:
        if ctx.distributed:
            dist.all_reduce(run.sums)
        run.last_train = {k: float(v) / float(run.sums[-1]) for k, v in zip(run.keys, run.sums[:-1])}
    if not ctx.is_main:
        return
    val_set = data.val_set
    run.last_val = _mean_losses(run.criterion, run.model, val_set.features, step, ctx.device) if val_set else {}
    # position, scale, rotation and colour errors of the decoded Gaussians, whatever the
    # representation's feature groups are (cholesky has no separate scale or rotation)
    natural = (evaluate_against_mean(run.model, data.transform, data.slot_mean, val_set.params)["natural"]
               if val_set else {})
    for prefix, values_ in (("epoch_train", run.last_train), ("epoch_val", run.last_val),
                            ("epoch_val_natural", {k: v["model"] for k, v in natural.items()}),
                            ("epoch_val_natural_slot_mean", {k: v["slot_mean"] for k, v in natural.items()})):
        for k, v in values_.items():
            writer.add_scalar(f"{prefix}/{k}", v, step)
    writer.flush()
    with open(run.output / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"epoch": run.epoch, "step": step, "train": run.last_train, "val": run.last_val,
                             "val_natural": natural}) + "\n")
    groups = " ".join(f"{k[6:]}={v:.3f}" for k, v in run.last_val.items() if k.startswith("group/"))
    _log(ctx, f"epoch {run.epoch} step {step}: train loss {run.last_train.get('loss', float('nan')):.4f}, "
              f"val loss {run.last_val.get('loss', float('nan')):.4f} ({groups})")


def _finish(run: _Run, data: _Data, summary: dict) -> None:
    """The main process's last files: a model file if nothing ran, the validation report."""
    output = run.output
    if not (output / "model.pt").exists():  # nothing ran (already finished): still leave a model file
        save_model(output / "model.pt", run.model, run.config, data.transform, data.slot_mean)
    if data.val_set is not None:
        report = evaluate_against_mean(run.model, data.transform, data.slot_mean, data.val_set.params,
                                       image_size=run.config.loss.image_size)
        (output / "eval_val.json").write_text(json.dumps(report, indent=2))
        summary["eval_val"] = {g: {k: round(v, 5) for k, v in row.items()} for g, row in report["groups"].items()}
        summary["eval_val"]["image_psnr"] = {k: round(v, 2) for k, v in report["image_psnr"].items()}
