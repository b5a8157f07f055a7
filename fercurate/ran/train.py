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

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from tqdm import tqdm

from fercurate.atomic import atomic_path
from fercurate.errors import InputError
from fercurate.manifest import read_manifest
from fercurate.progress import progress
from fercurate.provenance import environment, now_utc
from fercurate.ran import data as rdata
from fercurate.ran.batches import AugmentConfig, BatchLoader, epoch_batches, prepare_batch
from fercurate.ran.backbone import load_pretrained
from fercurate.ran.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from fercurate.ran.config import FREEZABLE, RESUME_OVERRIDABLE, SCHEDULES, VARIANT_DEFAULTS, VARIANTS, TrainConfig, config_from_state
from fercurate.ran.crops import eval_boxes, fixed_crop_boxes
from fercurate.ran.metrics import accuracy_summary
from fercurate.ran.predictor import run_model
from fercurate.ran.loss import ran_loss
from fercurate.ran.model import RegionAttentionNetwork, head_from_baseline, model_for_config, model_from_checkpoint
from fercurate.workspace import Workspace

# Kept importable from here: the config, its choices and the model/crop helpers moved to their own modules.
__all__ = ["FREEZABLE", "RESUME_OVERRIDABLE", "SCHEDULES", "VARIANTS", "VARIANT_DEFAULTS", "LRSchedule", "TrainConfig",
           "TrainResult", "eval_boxes", "fixed_crop_boxes", "freeze_stages", "load_pretrained_head",
           "model_from_checkpoint", "train"]

def augment_config(cfg: TrainConfig) -> AugmentConfig:
    """The training augmentation a config asks for."""
    return AugmentConfig(flip=cfg.flip, rotate=cfg.rotate, scale=(cfg.scale_min, cfg.scale_max),
                               translate=cfg.translate, erase=cfg.erase, enabled=cfg.augment)


class LRSchedule:
    """lr(step) = base_lr * warmup * (step decay at milestones | cosine), computed from the global step."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.step_count = 0

    def factor(self, step: int) -> float:
        epoch = step / self.steps_per_epoch
        if self.cfg.schedule == "step":
            f = self.cfg.gamma ** sum(int(epoch) >= m for m in self.cfg.milestones)
        else:
            f = 0.5 * (1 + math.cos(math.pi * min(1.0, epoch / self.cfg.epochs)))
        if self.cfg.warmup_epochs > 0 and epoch < self.cfg.warmup_epochs:
            f *= (step + 1) / (self.cfg.warmup_epochs * self.steps_per_epoch)
        return f

    def apply(self) -> float:
        """Set the lr for the next optimiser step; returns it."""
        lr = self.cfg.lr * self.factor(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def advance(self) -> None:
        self.step_count += 1

    def state_dict(self) -> dict[str, int]:
        return {"step_count": self.step_count, "steps_per_epoch": self.steps_per_epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step_count = int(state["step_count"])


@dataclass
class TrainResult:
    checkpoint: Path
    best_checkpoint: Path | None
    epochs_done: int
    train_samples: int
    excluded: int
    metrics: list[dict[str, Any]]
    seconds: float


def load_pretrained_head(model: torch.nn.Module, path: str, labels: list[str]) -> str:
    """Start the classifier (and RAN's attention) from a fercurate checkpoint with the same label map.

    From a baseline checkpoint, RAN's FC gets the baseline's weights split over [F_i : F_m]
    (:func:`fercurate.ran.model.head_from_baseline`); from a RAN checkpoint, a RAN takes FC, q0 and q1
    as they are. Returns a one-line report.
    """
    state = load_checkpoint(path)
    if list(state["labels"]) != list(labels):
        raise InputError(f"{path}: --pretrained-head needs the same label map as this run "
                         f"(file: {state['labels']}, run: {labels})")
    weights = state["model"]
    if state.get("arch") == "ran":
        if not isinstance(model, RegionAttentionNetwork):
            raise InputError(f"{path}: a RAN checkpoint's head (1024-d) does not fit a baseline; "
                             "use --pretrained without --pretrained-head")
        head = {k: v for k, v in weights.items() if k.split(".")[0] in ("fc", "q0", "q1")}
        model.load_state_dict(head, strict=False)
        return f"{path}: classifier and attention (fc, q0, q1) loaded from the RAN checkpoint"
    head_from_baseline(model, weights["fc.weight"], weights["fc.bias"])
    how = "split over [F_i : F_m], q0 = q1 = 0" if isinstance(model, RegionAttentionNetwork) else "as is"
    return f"{path}: classifier loaded from the baseline checkpoint ({how})"


def freeze_stages(model: torch.nn.Module, stages: list[str]) -> list[torch.nn.Module]:
    """Stop gradients (and BatchNorm statistic updates) in the named backbone stages; returns their modules."""
    bb = model.backbone
    parts = {"stem": [bb.conv1, bb.bn1], "layer1": [bb.layer1], "layer2": [bb.layer2], "layer3": [bb.layer3],
             "layer4": [bb.layer4]}
    modules = [m for s in stages for m in parts[s]]
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)
    return modules


# --- distributed helpers --------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def _init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        # rank 0 validates alone at the end of every epoch while the others wait: allow it time on a CPU
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo", timeout=timedelta(hours=2))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA GPU is available (use --device cpu or auto)")
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


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


class _Metrics:
    """Appends JSON lines to ``metrics.jsonl`` (rank 0 only); on resume drops lines past the checkpoint."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None) -> None:
        self.path, self.enabled = path, enabled
        self.lines: list[dict[str, Any]] = []
        if enabled and resume_step is not None and path.exists():
            kept = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            with atomic_path(path) as tmp:
                tmp.write_text("".join(k + "\n" for k in kept))
        elif enabled and resume_step is None and path.exists():
            path.unlink()

    def log(self, record: dict[str, Any]) -> None:
        self.lines.append(record)
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, sort_keys=True) + "\n")


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    return {
        "generator": gen.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _epoch_generator(cfg: TrainConfig, epoch: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, epoch, rank]).generate_state(1)[0]))


def train(
    config: TrainConfig,
    *,
    resume: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    stop_after_steps: int | None = None,
    workspace: Workspace | str | os.PathLike | None = None,
    echo=print,  # noqa: ANN001 - any callable taking a str
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
    if resume is not None:
        ckpt_path = _resolve_resume(resume, config.arch)
        state = load_checkpoint(ckpt_path)
        config = _resumed_config(state, overrides or {}, ckpt_path)
    cfg = config.resolved()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    kind = "cuda" if (cfg.device == "auto" and torch.cuda.is_available()) or cfg.device.startswith("cuda") else "cpu"
    d = _init_distributed(kind)
    device = _device(cfg, d.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    use_amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    if cfg.batch_size % d.world:
        raise InputError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes ({d.world})")
    per_rank_batch = cfg.batch_size // d.world
    out = Path(cfg.out)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)

    manifest_path = ws.resolve_manifest(cfg.manifest)
    manifest = read_manifest(manifest_path)
    manifest_hash = file_sha256(manifest_path)
    if state is not None and state["manifest"]["sha256"] != manifest_hash:
        raise InputError(
            f"{manifest_path}: changed since the checkpoint was written (sha256 {manifest_hash[:12]} vs "
            f"{state['manifest']['sha256'][:12]}); a resumed run must read the same manifest"
        )
    labels = rdata.label_names(cfg.num_classes)

    train_samples = _samples(cfg, manifest, cfg.splits, cfg.subset, cfg.limit, ws)
    train_samples, train_store = _load_store(cfg, train_samples, d, "decode train faces", ws)
    excluded = [dict(r, part="train") for r in train_samples.excluded]
    val_samples = val_store = None
    if cfg.val_splits or cfg.val_subset:
        val_samples = _samples(cfg, manifest, cfg.val_splits, cfg.val_subset, None, ws)
        val_samples, val_store = _load_store(cfg, val_samples, d, "decode val faces", ws)
        excluded += [dict(r, part="val") for r in val_samples.excluded]
    if d.main:
        _write_excluded(excluded, out / "excluded.parquet")
        if excluded:
            echo(f"excluded {len(excluded):,} rows (first: {excluded[0]['sample_id']}: {excluded[0]['reason']}) "
                 f"-> {out / 'excluded.parquet'}")
    n = len(train_samples)
    lm_train = rdata.landmark_fractions(train_samples, train_store) if cfg.crops == "landmark" else None

    torch.manual_seed(cfg.seed)
    model = model_for_config(cfg, len(labels))
    if cfg.pretrained and state is None:
        report = load_pretrained(model.backbone, cfg.pretrained)
        if d.main:
            echo(report.summary())
        if cfg.pretrained_head:
            message = load_pretrained_head(model, cfg.pretrained, labels)
            if d.main:
                echo(message)
    model.to(device)
    # channels_last on every device: tensor cores want it on CUDA, and oneDNN's CPU convolutions are
    # faster with it too (ResNet-18 at 64 px, 2 AVX2 cores: 67 -> 83 training images/s, RAN 18 -> 21.5)
    model = model.to(memory_format=torch.channels_last)
    model.channels_last = True
    frozen = freeze_stages(model, cfg.freeze)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                weight_decay=cfg.weight_decay)
    steps_per_epoch = len(epoch_batches(n, per_rank_batch, cfg.seed, 0, rank=d.rank, world=d.world))
    schedule = LRSchedule(optimizer, cfg, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and device.type == "cuda")
    start_epoch, start_batch, epoch_acc = 0, 0, None
    best: dict[str, Any] = {}
    gen_state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, start_batch = int(state["epoch"]), int(state["batch_in_epoch"])
        epoch_acc = state.get("epoch_stats")
        best = dict(state.get("best") or {})
        rng = state["rng"][d.rank] if d.rank < len(state["rng"]) else state["rng"][0]
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available() and rng["cuda"]:
            torch.cuda.set_rng_state_all(rng["cuda"])
        gen_state = rng["generator"] if start_batch else None
        if d.main:
            echo(f"resuming {ckpt_path} at epoch {start_epoch + 1}, batch {start_batch} (step {schedule.step_count})")
    net = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    metrics = _Metrics(out / "metrics.jsonl", d.main, schedule.step_count if state is not None else None)
    metrics.log({"event": "resume" if state is not None else "start", "step": schedule.step_count,
                 "started_at": now_utc(), "world_size": d.world, "environment": environment(device)})
    ckpt_file = out / f"{cfg.arch}.pt"
    best_file = out / f"{cfg.arch}.best.pt"
    aug = augment_config(cfg)
    random_eval = eval_boxes(cfg) if cfg.crops == "random" else None
    train_labels = torch.as_tensor(train_samples.labels)
    train_soft = None if train_samples.soft is None else torch.as_tensor(train_samples.soft)
    if d.main:
        echo(f"training {cfg.arch} ({cfg.variant}) on {n:,} faces from {manifest_path} "
             f"({d.world} process{'es' if d.world > 1 else ''} on {device}, amp {'on' if use_amp else 'off'}); "
             f"{steps_per_epoch} steps/epoch -> {out}")

    def save(epoch_done: int, batch_done: int, gen: torch.Generator, stats: dict | None, path: Path = ckpt_file,
             gather: bool = True) -> None:
        # every rank must call this when gather is true (its RNG states are collected on rank 0)
        rngs = [_rng_state(gen)]
        if d.world > 1 and gather:
            gathered: list[Any] = [None] * d.world
            dist.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not d.main:
            return
        save_checkpoint(
            {
                "arch": cfg.arch,
                "labels": labels,
                "config": dataclasses.asdict(cfg),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": schedule.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch_done,
                "batch_in_epoch": batch_done,
                "epoch_stats": stats,
                "rng": rngs,
                "best": best,
                "world_size": d.world,
                "manifest": {"path": str(manifest_path.resolve()), "name": manifest.name, "sha256": manifest_hash},
                "train_samples": n,
                "metrics": metrics.lines[-1] if metrics.lines else None,
            },
            path,
        )

    gen = _epoch_generator(cfg, start_epoch, d.rank)
    last_save = time.monotonic()
    for epoch in range(start_epoch, cfg.epochs):
        gen = _epoch_generator(cfg, epoch, d.rank)
        first = start_batch if epoch == start_epoch else 0
        if first and gen_state is not None:
            gen.set_state(gen_state)
        stats = dict(epoch_acc) if (first and epoch_acc) else {"loss": 0.0, "ce": 0.0, "rb": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        batches = epoch_batches(n, per_rank_batch, cfg.seed, epoch, rank=d.rank, world=d.world)
        loader = BatchLoader(batches[first:], faces=None if train_store is None else train_store.faces,
                                   samples=train_samples, size=cfg.face_size, workers=cfg.workers, align=cfg.align)
        net.train()
        for module in frozen:
            module.eval()  # frozen stages keep their BatchNorm statistics
        bar = (progress(total=len(batches), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", initial=first)
               if d.main else tqdm(disable=True))
        t_epoch = t_last = time.perf_counter()
        for b_i, (faces_u8, idx) in enumerate(loader, start=first):
            lr = schedule.apply()
            faces, boxes = prepare_batch(
                faces_u8, input_size=cfg.input_size, train=True, augment=aug, generator=gen, crops=cfg.crops,
                num_crops=cfg.random_crops, random_scale=(cfg.random_min_scale, cfg.random_max_scale),
                landmarks=None if lm_train is None else torch.as_tensor(lm_train[idx.numpy()]),
                landmark_scale=cfg.landmark_scale, landmark_clip=cfg.landmark_clip, eval_boxes=random_eval,
                device=device,
            )
            hard = train_labels[idx].to(device)
            target = hard if train_soft is None else train_soft[idx].to(device)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
                outp = net(faces, boxes)
            loss, ce, rb = ran_loss(outp.logits, target, outp.mu, margin=cfg.rb_margin, rb_weight=cfg.rb_weight,
                                    label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise InputError(f"training diverged at epoch {epoch + 1}, batch {b_i} (loss {loss.item()}); lower --lr")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.advance()
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
            step = schedule.step_count
            if cfg.log_every and step % cfg.log_every == 0:
                metrics.log({"event": "train", "epoch": epoch + 1, "step": step, "lr": lr, "loss": loss.item(),
                             "ce": ce.item(), "rb": rb.item(), "acc": float((outp.logits.argmax(1) == hard).float().mean()),
                             "img_per_s": round(ips, 2)})
            stop = stop_after_steps is not None and step >= stop_after_steps
            timed = cfg.save_every_min > 0 and time.monotonic() - last_save > cfg.save_every_min * 60
            if d.world > 1:
                flag = torch.tensor([int(timed)], device=device if device.type == "cuda" else "cpu")
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                timed = bool(flag.item())
            if (stop or timed) and b_i + 1 < len(batches):
                save(epoch, b_i + 1, gen, stats)
                last_save = time.monotonic()
                t_last = time.perf_counter()  # checkpoint writing is not training time
            if stop:
                bar.close()
                if b_i + 1 < len(batches):
                    return _result(ckpt_file, best_file, epoch, n, excluded, metrics, t_start)
                break
        bar.close()
        totals = _reduce_stats(stats, d, device)
        record: dict[str, Any] = {
            "event": "epoch", "epoch": epoch + 1, "step": schedule.step_count, "lr": optimizer.param_groups[0]["lr"],
            "train_loss": totals["loss"] / max(totals["seen"], 1), "train_ce": totals["ce"] / max(totals["seen"], 1),
            "train_rb": totals["rb"] / max(totals["seen"], 1), "train_acc": totals["correct"] / max(totals["seen"], 1),
            "train_seconds": round(time.perf_counter() - t_epoch, 2), "faces_seen": int(totals["seen"]),
            "world_size": d.world,
            "img_per_s": round(totals["seen"] / max(stats["seconds"], 1e-9), 2), "finished_at": now_utc(),
        }
        if val_samples is not None and d.main:
            lm_val = rdata.landmark_fractions(val_samples, val_store) if cfg.crops == "landmark" else None
            res = run_model(model, val_samples, val_store, cfg, device=device, landmarks=lm_val, use_amp=use_amp,
                            desc=f"validate epoch {epoch + 1}")
            summ = accuracy_summary(val_samples.labels, res["probs"].argmax(1), len(labels))
            record.update({"val_acc": summ["accuracy"], "val_mean_class_acc": summ["mean_class_accuracy"],
                           "val_n": summ["n"]})
            if res["mu"] is not None:  # RAN: self-attention mu per crop over the validation faces
                record.update({"val_mu_mean": np.round(res["mu"].mean(0), 5).tolist(),
                               "val_mu_sd": np.round(res["mu"].std(0), 5).tolist()})
            if not best or summ["accuracy"] > best.get("val_acc", -1):
                best = {"epoch": epoch + 1, "val_acc": summ["accuracy"]}
                record["best"] = True
        metrics.log(record)
        if d.main:
            echo(_epoch_line(record))
        if val_samples is not None and d.world > 1:
            obj = [best]
            dist.broadcast_object_list(obj, src=0)
            best = obj[0]
        save(epoch + 1, 0, gen, None)
        if record.get("best"):
            save(epoch + 1, 0, gen, None, path=best_file, gather=False)
        last_save = time.monotonic()
        if stop_after_steps is not None and schedule.step_count >= stop_after_steps:
            return _result(ckpt_file, best_file, epoch + 1, n, excluded, metrics, t_start)
    return _result(ckpt_file, best_file, cfg.epochs, n, excluded, metrics, t_start)


def _reduce_stats(stats: dict[str, float], d: Dist, device: torch.device) -> dict[str, float]:
    if d.world == 1:
        return stats
    keys = ["loss", "ce", "rb", "correct", "seen"]
    t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64,
                     device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def _epoch_line(r: dict[str, Any]) -> str:
    line = (f"epoch {r['epoch']}: loss {r['train_loss']:.4f} (rb {r['train_rb']:.4f}) train acc {r['train_acc']:.4f} "
            f"{r['img_per_s']:.1f} img/s {r['train_seconds']:.0f}s")
    if "val_acc" in r:
        line += f" | val acc {r['val_acc']:.4f} mean-class {r['val_mean_class_acc']:.4f}" + (" *best*" if r.get("best") else "")
    return line


def _result(ckpt: Path, best: Path, epochs: int, n: int, excluded: list, metrics: _Metrics, t0: float) -> TrainResult:
    return TrainResult(ckpt, best if best.exists() else None, epochs, n, len(excluded), metrics.lines,
                       time.perf_counter() - t0)


def _resolve_resume(resume: str | os.PathLike, arch: str) -> Path:
    path = Path(resume)
    if path.is_dir():
        candidates = [path / f"{arch}.pt"] + sorted(p for p in path.glob("*.pt") if not p.name.endswith(".best.pt"))
        for c in candidates:
            if c.exists():
                return c
        raise InputError(f"{path}: no checkpoint (*.pt) to resume from")
    if not path.exists():
        raise InputError(f"{path}: checkpoint to resume not found")
    return path


def _resumed_config(state: dict[str, Any], overrides: dict[str, Any], path: Path) -> TrainConfig:
    # settings added after the checkpoint was written take their defaults (what that run used)
    values = dataclasses.asdict(config_from_state(state["config"]))
    for key, value in overrides.items():
        if value is None:
            continue
        if key in RESUME_OVERRIDABLE:
            values[key] = value
        elif values.get(key) != value:
            raise InputError(
                f"{path}: a resumed run keeps its settings; {key} = {value!r} differs from the checkpoint's "
                f"{values.get(key)!r} (only {', '.join(sorted(RESUME_OVERRIDABLE))} may change)"
            )
    return TrainConfig(**values)
