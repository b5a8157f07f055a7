"""Training RAN (or the plain ResNet-18 baseline) on any manifest: ``fercurate train``.

Paper defaults: SGD lr 0.01, momentum 0.9, lr / 10 at epochs 15 and 30, 40 epochs, 224 px input,
RB-loss margin 0.02 added 1:1 to cross-entropy. ``variant="official-code"`` switches to the authors'
public code: softmax-normalised attention, margin 0.1, no input normalisation, lr 0.1, its crop boxes.

Runs are reproducible and resumable: the data order of an epoch depends only on (seed, epoch), the
augmentation is drawn from a generator whose state is checkpointed, and a checkpoint (written atomically
every epoch and every ``save_every_min`` minutes) holds model, optimiser, schedule, AMP scaler, RNG
states and position, so ``resume`` continues exactly where the run stopped.

On CUDA: mixed precision (fp16 autocast + GradScaler); channels_last everywhere. Several GPUs: launch with
``torchrun --nproc_per_node N $(which fercurate) train ...``; each process trains on its shard of every
epoch with DistributedDataParallel (NCCL on GPUs, gloo on CPU); ``batch_size`` is the global batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from tqdm import tqdm

from fercurate.atomic import atomic_path, sweep_stale_temps
from fercurate.errors import InputError
from fercurate.interrupts import keeping
from fercurate.locks import run_lock
from fercurate.manifest import read_manifest
from fercurate.progress import progress
from fercurate.provenance import environment, now_utc
from fercurate.ran import data as rdata
from fercurate.ran.batches import AugmentConfig, BatchLoader, epoch_batches, prepare_batch
from fercurate.ran.backbone import load_pretrained
from fercurate.ran.checkpoint import file_sha256, find_checkpoint, load_checkpoint, load_pretrained_head, save_checkpoint
from fercurate.ran.config import FREEZABLE, RESUME_OVERRIDABLE, SCHEDULES, VARIANT_DEFAULTS, VARIANTS, TrainConfig, resumed_config
from fercurate.ran.crops import eval_boxes, fixed_crop_boxes
from fercurate.ran.distributed import Dist, init_distributed, reduce_stats, train_device
from fercurate.ran.metrics import accuracy_summary
from fercurate.ran.predictor import run_model
from fercurate.ran.runlog import FILE_NAME, MetricsLog
from fercurate.ran.loss import ran_loss
from fercurate.ran.model import model_for_config, model_from_checkpoint
from fercurate.ran.optim import LRSchedule, freeze_stages
from fercurate.workspace import Workspace

# Kept importable from here: the config and the helpers that moved to their own modules.
__all__ = ["FREEZABLE", "RESUME_OVERRIDABLE", "SCHEDULES", "VARIANTS", "VARIANT_DEFAULTS", "LRSchedule", "TrainConfig",
           "TrainResult", "eval_boxes", "fixed_crop_boxes", "freeze_stages", "load_pretrained_head",
           "model_from_checkpoint", "train"]


def augment_config(cfg: TrainConfig) -> AugmentConfig:
    """The training augmentation a config asks for."""
    return AugmentConfig(flip=cfg.flip, rotate=cfg.rotate, scale=(cfg.scale_min, cfg.scale_max),
                         translate=cfg.translate, erase=cfg.erase, enabled=cfg.augment)


@dataclass
class TrainResult:
    """Where a run's checkpoints are, how far it got, and what it logged."""

    checkpoint: Path
    best_checkpoint: Path | None
    epochs_done: int
    train_samples: int
    excluded: int
    metrics: list[dict[str, Any]]
    seconds: float


# --- data -------------------------------------------------------------------------------------------


def _subset_ids(name: str, manifest_path: Path, manifest_name: str, ws: Workspace) -> set[str]:
    from fercurate.subsets import find_subset, subset_ids

    info = find_subset(name, manifest=None if name.endswith(".parquet") else manifest_name, workspace=ws)
    if info.manifest != manifest_name:
        raise InputError(f"subset {info.name!r} belongs to manifest {info.manifest!r}, not {manifest_name!r} ({manifest_path})")
    return subset_ids(info)


def _samples(cfg: TrainConfig, manifest, splits: list[str], subset: str | None, limit: int | None,  # noqa: ANN001
             ws: Workspace) -> rdata.Samples:
    ids = _subset_ids(subset, manifest.path, manifest.name, ws) if subset else None
    samples = rdata.select_samples(manifest, splits=splits, ids=ids, num_classes=cfg.num_classes, targets=cfg.targets)
    if limit and limit < len(samples):
        keep = np.zeros(len(samples), dtype=bool)
        keep[np.sort(np.random.default_rng(cfg.seed).permutation(len(samples))[:limit])] = True
        samples = samples.subset(keep)
    return samples


def _load_store(cfg: TrainConfig, samples: rdata.Samples, d: Dist, desc: str,
                ws: Workspace) -> tuple[rdata.Samples, rdata.FaceStore | None]:
    """Decode/cache faces (rank 0 builds the cache, the others wait and read it)."""
    if not cfg.cache:
        return rdata.drop_missing_files(samples), None
    if d.main:
        store = rdata.load_faces(samples, cfg.face_size, cache_dir=cfg.cache_dir, workers=cfg.decode_workers, desc=desc,
                                 align=cfg.align, workspace=ws)
    d.barrier()
    if not d.main:
        store = rdata.load_faces(samples, cfg.face_size, cache_dir=cfg.cache_dir, workers=1, desc=desc,
                                 align=cfg.align, workspace=ws)
    return rdata.drop_failures(samples, store)


def _write_excluded(rows: list[dict], path: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=pa.schema([("sample_id", pa.string()), ("kind", pa.string()),
                                                         ("reason", pa.string()), ("part", pa.string())]))
    with atomic_path(path, suffix=".parquet.tmp") as tmp:
        pq.write_table(table, tmp)


# --- the loop ---------------------------------------------------------------------------------------


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"generator": gen.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def _epoch_generator(cfg: TrainConfig, epoch: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, epoch, rank]).generate_state(1)[0]))


@dataclass
class _Position:
    """Where a run (re)starts: the epoch, the batch within it, that epoch's running stats, the augmentation
    generator's state at that batch, and the best validation so far."""

    epoch: int = 0
    batch: int = 0
    stats: dict[str, float] | None = None
    generator: torch.Tensor | None = None
    best: dict[str, Any] = field(default_factory=dict)


class _Run:
    """One training run, in the steps :func:`train` takes: set up the processes and device, prepare the
    data, build the model and optimiser, resume a checkpoint, then run epochs (steps, validation,
    checkpoints) and finish with a :class:`TrainResult`."""

    def __init__(self, cfg: TrainConfig, echo: Callable[[str], Any], t_start: float) -> None:
        self.cfg, self.echo, self.t_start = cfg, echo, t_start
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        kind = "cuda" if (cfg.device == "auto" and torch.cuda.is_available()) or cfg.device.startswith("cuda") else "cpu"
        self.d = d = init_distributed(kind)
        self.device = device = train_device(cfg, d.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.use_amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
        self.amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        if cfg.batch_size % d.world:
            raise InputError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({d.world})")
        self.per_rank_batch = cfg.batch_size // d.world
        self.out = Path(cfg.out)
        if d.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_file = self.out / f"{cfg.arch}.pt"
        self.best_file = self.out / f"{cfg.arch}.best.pt"

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """The main process holds the run folder for the whole run (a second run writing it refuses at once),
        sweeps the temp files of checkpoint writes a killed run left, and says what an interrupt keeps."""
        if not self.d.main:
            yield
            return
        with run_lock(self.ckpt_file, "training run"), keeping(self._kept):
            for target in (self.ckpt_file, self.best_file):
                sweep_stale_temps(target)
            yield

    def _kept(self) -> str:
        if not self.ckpt_file.exists():
            return f"no checkpoint was written yet: {self.out} holds no run to continue"
        return f"the last checkpoint {self.ckpt_file} is kept; continue with: fercurate train --resume {self.out}"

    def say(self, line: str) -> None:
        """Echo a line from the main process only."""
        if self.d.main:
            self.echo(line)

    # --- the steps ---------------------------------------------------------------------------------

    def prepare_data(self, ws: Workspace, state: dict[str, Any] | None) -> None:
        """The manifest (the checkpoint's, unchanged, on resume), the training and validation faces, the
        excluded rows (written to excluded.parquet) and the landmarks of landmark crops."""
        cfg = self.cfg
        self.manifest_path = ws.resolve_manifest(cfg.manifest)
        self.manifest = read_manifest(self.manifest_path)
        self.manifest_hash = file_sha256(self.manifest_path)
        if state is not None and state["manifest"]["sha256"] != self.manifest_hash:
            raise InputError(
                f"{self.manifest_path}: changed since the checkpoint was written (sha256 {self.manifest_hash[:12]} vs "
                f"{state['manifest']['sha256'][:12]}); a resumed run must read the same manifest"
            )
        self.labels = rdata.label_names(cfg.num_classes)
        samples = _samples(cfg, self.manifest, cfg.splits, cfg.subset, cfg.limit, ws)
        self.train_samples, self.train_store = _load_store(cfg, samples, self.d, "decode train faces", ws)
        self.excluded = [dict(r, part="train") for r in self.train_samples.excluded]
        self.val_samples = self.val_store = None
        if cfg.val_splits or cfg.val_subset:
            samples = _samples(cfg, self.manifest, cfg.val_splits, cfg.val_subset, None, ws)
            self.val_samples, self.val_store = _load_store(cfg, samples, self.d, "decode val faces", ws)
            self.excluded += [dict(r, part="val") for r in self.val_samples.excluded]
        if self.d.main:
            _write_excluded(self.excluded, self.out / "excluded.parquet")
        if self.excluded:
            first = self.excluded[0]
            self.say(f"excluded {len(self.excluded):,} rows (first: {first['sample_id']}: {first['reason']}) "
                     f"-> {self.out / 'excluded.parquet'}")
        self.n = len(self.train_samples)
        self.lm_train = rdata.landmark_fractions(self.train_samples, self.train_store) if cfg.crops == "landmark" else None

    def build_model(self, state: dict[str, Any] | None) -> None:
        """The seeded network (a new run starts from --pretrained), its frozen stages, SGD, the lr schedule and
        the AMP scaler."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        model = model_for_config(cfg, len(self.labels))
        if cfg.pretrained and state is None:
            self.say(load_pretrained(model.backbone, cfg.pretrained).summary())
            if cfg.pretrained_head:
                self.say(load_pretrained_head(model, cfg.pretrained, self.labels))
        model.to(self.device)
        # channels_last on every device: tensor cores want it on CUDA, and oneDNN's CPU convolutions are
        # faster with it too (ResNet-18 at 64 px, 2 AVX2 cores: 67 -> 83 training images/s, RAN 18 -> 21.5)
        self.model = model = model.to(memory_format=torch.channels_last)
        model.channels_last = True
        self.frozen = freeze_stages(model, cfg.freeze)
        self.optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                         momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = len(epoch_batches(self.n, self.per_rank_batch, cfg.seed, 0, rank=self.d.rank,
                                                 world=self.d.world))
        self.schedule = LRSchedule(self.optimizer, cfg, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.device.type == "cuda")

    def resume(self, state: dict[str, Any] | None, ckpt_path: Path | None) -> _Position:
        """Load a checkpoint's model, optimiser, schedule, scaler and RNG states; where the run goes on."""
        if state is None:
            return _Position()
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        at = _Position(int(state["epoch"]), int(state["batch_in_epoch"]), state.get("epoch_stats"),
                       best=dict(state.get("best") or {}))
        rng = state["rng"][self.d.rank] if self.d.rank < len(state["rng"]) else state["rng"][0]
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available() and rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        at.generator = rng["generator"] if at.batch else None
        self.say(f"resuming {ckpt_path} at epoch {at.epoch + 1}, batch {at.batch} (step {self.schedule.step_count})")
        return at

    def start(self, resumed: bool) -> None:
        """Wrap the model for DistributedDataParallel, open metrics.jsonl and say what is trained where."""
        cfg, d = self.cfg, self.d
        self.net = self.model
        if d.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.metrics = MetricsLog(self.out / FILE_NAME, d.main, self.schedule.step_count if resumed else None)
        self.metrics.log({"event": "resume" if resumed else "start", "step": self.schedule.step_count,
                          "started_at": now_utc(), "world_size": d.world, "environment": environment(self.device)})
        self.aug = augment_config(cfg)
        self.random_eval = eval_boxes(cfg) if cfg.crops == "random" else None
        self.train_labels = torch.as_tensor(self.train_samples.labels)
        self.train_soft = None if self.train_samples.soft is None else torch.as_tensor(self.train_samples.soft)
        self.say(f"training {cfg.arch} ({cfg.variant}) on {self.n:,} faces from {self.manifest_path} "
                 f"({d.world} process{'es' if d.world > 1 else ''} on {self.device}, amp {'on' if self.use_amp else 'off'}); "
                 f"{self.steps_per_epoch} steps/epoch -> {self.out}")

    def run(self, at: _Position, stop_after_steps: int | None) -> TrainResult:
        """Epochs from ``at`` to the last (or until ``stop_after_steps`` optimiser steps, as a kill would)."""
        cfg = self.cfg
        self.best = at.best
        self.last_save = time.monotonic()
        for epoch in range(at.epoch, cfg.epochs):
            first = at.batch if epoch == at.epoch else 0
            gen = _epoch_generator(cfg, epoch, self.d.rank)
            if first and at.generator is not None:
                gen.set_state(at.generator)
            stats = dict(at.stats) if (first and at.stats) else {"loss": 0.0, "ce": 0.0, "rb": 0.0, "correct": 0,
                                                                 "seen": 0, "seconds": 0.0}
            if not self.run_epoch(epoch, first, gen, stats, stop_after_steps):
                return self.finish(epoch)
            record = self.epoch_record(epoch, stats)
            if self.val_samples is not None and self.d.main:
                self.validate(epoch, record)
            self.metrics.log(record)
            self.say(_epoch_line(record))
            if self.val_samples is not None and self.d.world > 1:
                obj = [self.best]
                dist.broadcast_object_list(obj, src=0)
                self.best = obj[0]
            self.save(epoch + 1, 0, gen, None)
            if record.get("best"):
                self.save(epoch + 1, 0, gen, None, path=self.best_file, gather=False)
            self.last_save = time.monotonic()
            if stop_after_steps is not None and self.schedule.step_count >= stop_after_steps:
                return self.finish(epoch + 1)
        return self.finish(cfg.epochs)

    def run_epoch(self, epoch: int, first: int, gen: torch.Generator, stats: dict[str, float],
                  stop_after_steps: int | None) -> bool:
        """The optimiser steps of one epoch from batch ``first``, adding to ``stats``; False when the run
        stopped (checkpointed) before the epoch's end."""
        cfg, d, device = self.cfg, self.d, self.device
        batches = epoch_batches(self.n, self.per_rank_batch, cfg.seed, epoch, rank=d.rank, world=d.world)
        loader = BatchLoader(batches[first:], faces=None if self.train_store is None else self.train_store.faces,
                             samples=self.train_samples, size=cfg.face_size, workers=cfg.workers, align=cfg.align)
        self.net.train()
        for module in self.frozen:
            module.eval()  # frozen stages keep their BatchNorm statistics
        bar = (progress(total=len(batches), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", initial=first)
               if d.main else tqdm(disable=True))
        self.epoch_started = t_last = time.perf_counter()
        for b_i, (faces_u8, idx) in enumerate(loader, start=first):
            lr = self.schedule.apply()
            faces, boxes = prepare_batch(
                faces_u8, input_size=cfg.input_size, train=True, augment=self.aug, generator=gen, crops=cfg.crops,
                num_crops=cfg.random_crops, random_scale=(cfg.random_min_scale, cfg.random_max_scale),
                landmarks=None if self.lm_train is None else torch.as_tensor(self.lm_train[idx.numpy()]),
                landmark_scale=cfg.landmark_scale, landmark_clip=cfg.landmark_clip, eval_boxes=self.random_eval,
                device=device,
            )
            hard = self.train_labels[idx].to(device)
            target = hard if self.train_soft is None else self.train_soft[idx].to(device)
            with torch.autocast(device_type=device.type, dtype=self.amp_dtype, enabled=self.use_amp):
                outp = self.net(faces, boxes)
            loss, ce, rb = ran_loss(outp.logits, target, outp.mu, margin=cfg.rb_margin, rb_weight=cfg.rb_weight,
                                    label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise InputError(f"training diverged at epoch {epoch + 1}, batch {b_i} (loss {loss.item()}); lower --lr")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.schedule.advance()
            bs = len(idx)
            stats["loss"] += loss.item() * bs
            stats["ce"] += ce.item() * bs
            stats["rb"] += rb.item() * bs
            stats["correct"] += int((outp.logits.argmax(1) == hard).sum())
            stats["seen"] += bs
            now = time.perf_counter()
            stats["seconds"] += now - t_last  # wall time of the batch, loading included
            t_last = now
            ips = stats["seen"] * d.world / max(stats["seconds"], 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss'] / stats['seen']:.3f}", acc=f"{stats['correct'] / stats['seen']:.3f}",
                            img_s=f"{ips:.0f}", lr=f"{lr:.3g}", refresh=False)
            step = self.schedule.step_count
            if cfg.log_every and step % cfg.log_every == 0:
                self.metrics.log({"event": "train", "epoch": epoch + 1, "step": step, "lr": lr, "loss": loss.item(),
                                  "ce": ce.item(), "rb": rb.item(),
                                  "acc": float((outp.logits.argmax(1) == hard).float().mean()), "img_per_s": round(ips, 2)})
            stop = stop_after_steps is not None and step >= stop_after_steps
            timed = cfg.save_every_min > 0 and time.monotonic() - self.last_save > cfg.save_every_min * 60
            if d.world > 1:
                flag = torch.tensor([int(timed)], device=device if device.type == "cuda" else "cpu")
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                timed = bool(flag.item())
            if (stop or timed) and b_i + 1 < len(batches):
                self.save(epoch, b_i + 1, gen, stats)
                self.last_save = time.monotonic()
                t_last = time.perf_counter()  # checkpoint writing is not training time
            if stop:
                bar.close()
                if b_i + 1 < len(batches):
                    return False
                break
        bar.close()
        return True

    def epoch_record(self, epoch: int, stats: dict[str, float]) -> dict[str, Any]:
        """The epoch's metrics.jsonl line: its training loss and accuracy over every process."""
        totals = reduce_stats(stats, self.d, self.device)
        seen = max(totals["seen"], 1)
        return {
            "event": "epoch", "epoch": epoch + 1, "step": self.schedule.step_count,
            "lr": self.optimizer.param_groups[0]["lr"], "train_loss": totals["loss"] / seen,
            "train_ce": totals["ce"] / seen, "train_rb": totals["rb"] / seen, "train_acc": totals["correct"] / seen,
            "train_seconds": round(time.perf_counter() - self.epoch_started, 2), "faces_seen": int(totals["seen"]),
            "world_size": self.d.world,
            "img_per_s": round(totals["seen"] / max(stats["seconds"], 1e-9), 2), "finished_at": now_utc(),
        }

    def validate(self, epoch: int, record: dict[str, Any]) -> None:
        """Score the validation faces (rank 0) into ``record``; a better accuracy becomes the best epoch."""
        cfg, val = self.cfg, self.val_samples
        lm_val = rdata.landmark_fractions(val, self.val_store) if cfg.crops == "landmark" else None
        res = run_model(self.model, val, self.val_store, cfg, device=self.device, landmarks=lm_val,
                        use_amp=self.use_amp, desc=f"validate epoch {epoch + 1}")
        summ = accuracy_summary(val.labels, res["probs"].argmax(1), len(self.labels))
        record.update({"val_acc": summ["accuracy"], "val_mean_class_acc": summ["mean_class_accuracy"], "val_n": summ["n"]})
        if res["mu"] is not None:  # RAN: self-attention mu per crop over the validation faces
            record.update({"val_mu_mean": np.round(res["mu"].mean(0), 5).tolist(),
                           "val_mu_sd": np.round(res["mu"].std(0), 5).tolist()})
        if not self.best or summ["accuracy"] > self.best.get("val_acc", -1):
            self.best = {"epoch": epoch + 1, "val_acc": summ["accuracy"]}
            record["best"] = True

    def save(self, epoch_done: int, batch_done: int, gen: torch.Generator, stats: dict | None,
             path: Path | None = None, gather: bool = True) -> None:
        """Write a checkpoint (default: <out>/<arch>.pt) that continues exactly after ``batch_done`` batches of
        epoch ``epoch_done``; every rank calls it when ``gather`` (its RNG states are collected on rank 0)."""
        d = self.d
        rngs = [_rng_state(gen)]
        if d.world > 1 and gather:
            gathered: list[Any] = [None] * d.world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not d.main:
            return
        save_checkpoint(
            {
                "arch": self.cfg.arch,
                "labels": self.labels,
                "config": dataclasses.asdict(self.cfg),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": epoch_done,
                "batch_in_epoch": batch_done,
                "epoch_stats": stats,
                "rng": rngs,
                "best": self.best,
                "world_size": d.world,
                "manifest": {"path": str(self.manifest_path.resolve()), "name": self.manifest.name,
                             "sha256": self.manifest_hash},
                "train_samples": self.n,
                "metrics": self.metrics.lines[-1] if self.metrics.lines else None,
            },
            path or self.ckpt_file,
        )

    def finish(self, epochs_done: int) -> TrainResult:
        return TrainResult(self.ckpt_file, self.best_file if self.best_file.exists() else None, epochs_done, self.n,
                           len(self.excluded), self.metrics.lines, time.perf_counter() - self.t_start)


def train(
    config: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    stop_after_steps: int | None = None,
    workspace: Workspace | str | os.PathLike | None = None,
    echo: Callable[[str], Any] = print,
) -> TrainResult:
    """Train a model; returns where its checkpoint is and the logged metrics.

    ``resume`` is a checkpoint (or a run folder holding one): its config is used, except for the
    keys in ``overrides`` that :data:`RESUME_OVERRIDABLE` allows. ``stop_after_steps`` stops (after
    saving a checkpoint) once that many optimiser steps have run in total, as a kill would.
    ``workspace`` resolves the manifest and subset names and holds the face cache (default: the
    current workspace); relative ``out``/``cache_dir`` paths are taken from the current folder.
    """
    t_start = time.perf_counter()
    ws = workspace if isinstance(workspace, Workspace) else Workspace.current(workspace)
    state: dict[str, Any] | None = None
    ckpt_path = None
    if resume is not None:
        ckpt_path = find_checkpoint(resume, config.arch)
        state = load_checkpoint(ckpt_path)
        config = resumed_config(state, overrides or {}, ckpt_path)
    run = _Run(config.resolved(), echo, t_start)
    with run.claim():
        run.prepare_data(ws, state)
        run.build_model(state)
        at = run.resume(state, ckpt_path)
        run.start(resumed=state is not None)
        return run.run(at, stop_after_steps)


def _epoch_line(r: dict[str, Any]) -> str:
    line = (f"epoch {r['epoch']}: loss {r['train_loss']:.4f} (rb {r['train_rb']:.4f}) train acc {r['train_acc']:.4f} "
            f"{r['img_per_s']:.1f} img/s {r['train_seconds']:.0f}s")
    if "val_acc" in r:
        line += f" | val acc {r['val_acc']:.4f} mean-class {r['val_mean_class_acc']:.4f}" + (" *best*" if r.get("best") else "")
    return line
