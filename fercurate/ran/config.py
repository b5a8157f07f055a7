"""The one description of a training run (:class:`TrainConfig`) and of an evaluation (:class:`EvalConfig`),
read by the library and the CLI alike.

Every field is made with :func:`fercurate.settings.setting`: its help text, its command-line flag and,
where it has one, its set of choices; ``fercurate train`` builds its options from these fields
(:func:`fercurate.cli.options.setting_parameters`), and ``fercurate eval`` its options from
:class:`EvalConfig`'s, so a setting added here is on the command line too. The config is stored
whole in every checkpoint, so evaluation rebuilds the model and preprocesses faces the way training did.

This module imports neither torch nor any other ``fercurate.ran`` module: the names of the choices
live here and the modules that implement them (model, crops, data, loss) import them from here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from fercurate.errors import InputError
from fercurate.schema import FACE_ALIGNMENTS
from fercurate.compat import moved_module
from fercurate.settings import check_choices, setting
from fercurate.votes import LABEL_RULES

ARCHS = ("ran", "baseline")
VARIANTS = ("paper", "official-code")
CROP_MODES = ("fixed", "random", "landmark")
CROP_SET_NAMES = ("paper", "official-code")
TARGET_MODES = ("majority", "votes")
ATTENTIONS = ("sigmoid", "softmax")
NORMALIZATIONS = ("imagenet", "none")
STEMS = ("imagenet", "no-maxpool")
SCHEDULES = ("step", "cosine")
AMP_MODES = ("auto", "on", "off")
ALIGNMENTS = FACE_ALIGNMENTS  # face preprocessing (fercurate.schema)
# A TorchScript/ONNX model's contract (fercurate.ran.contract): the named input normalisations (unit: [0, 1];
# signed: x/127.5 - 1, i.e. [-1, 1]; imagenet: ImageNet mean/std; or mean=...,std=... on [0, 1] values), the
# channels it takes, where they sit in its input, and what its outputs are.
INPUT_NORMS = ("unit", "signed", "imagenet")
CHANNELS = ("rgb", "bgr", "gray")
LAYOUTS = ("nchw", "nhwc")
OUTPUT_KINDS = ("logits", "probabilities", "sigmoid")
# Backbone stages --freeze may hold fixed (weights and BatchNorm statistics), e.g. when fine-tuning.
FREEZABLE = ("stem", "layer1", "layer2", "layer3", "layer4")

PAPER_MARGIN = 0.02  # RB-loss margin alpha in the paper (Sec. IV-B)
OFFICIAL_CODE_MARGIN = 0.1  # the authors' FERPlus training script
PAPER_LANDMARK_SCALE = 0.8  # the paper's landmark crops: radius 0.4 of the face side (Sec. IV-E)
PAPER_RANDOM_CROPS = 3  # the paper's random cropping: 3 regions per face in each training iteration

# What each variant implies for settings left at None.
VARIANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "paper": {"lr": 0.01, "attention": "sigmoid", "normalize": "imagenet", "rb_margin": PAPER_MARGIN, "crop_set": "paper"},
    "official-code": {"lr": 0.1, "attention": "softmax", "normalize": "none", "rb_margin": OFFICIAL_CODE_MARGIN,
                      "crop_set": "official-code"},
}
# Settings a resumed run may change (everything else must match the checkpoint's config).
RESUME_OVERRIDABLE = {"epochs", "workers", "decode_workers", "device", "threads", "save_every_min", "log_every",
                      "cache_dir", "out"}


DATA, MODEL, OPTIM, AUG, PREP, RUN = "Data", "Model", "Optimisation", "Augmentation", "Face preprocessing", "Run"


@dataclass
class TrainConfig:
    """Every setting of a training run (stored in its checkpoints)."""

    manifest: str = setting(None, "Manifest path or name (e.g. manifests/ferplus.parquet).", short="-m", panel=DATA)
    out: str = setting(None, "Run folder (default: runs/<arch>-<manifest> in the workspace).", short="-o", panel=RUN)
    splits: list[str] = setting(help="Split(s) to train on (repeatable).", flag="--split",
                                repeat=True, factory=lambda: ["train"], panel=DATA)
    subset: str | None = setting(None, "Train only on this subset of the manifest (name or file).", panel=DATA)
    val_splits: list[str] = setting(help="Split(s) scored after every epoch (best epoch kept as *.best.pt).",
                                    flag="--val-split", repeat=True, factory=list, panel=DATA)
    val_subset: str | None = setting(None, "Validate on this subset instead of / within --val-split.", panel=DATA)
    arch: str = setting("ran", "ran: the Region Attention Network; baseline: plain ResNet-18 on the whole face.",
                        choices=ARCHS, panel=MODEL)
    variant: str = setting("paper", "paper | official-code: the authors' code (softmax attention, margin 0.1, "
                           "no input normalisation, lr 0.1, its crop boxes). Fills the settings left unset.",
                           choices=VARIANTS, panel=MODEL)
    crops: str = setting("fixed", "fixed (the paper's 5 regions) | random | landmark (manifest landmarks).",
                         choices=CROP_MODES, panel=MODEL)
    num_classes: int = setting(8, "8 or 7 (contempt dropped).", flag="--classes", choices=(7, 8), panel=DATA)
    targets: str = setting("majority", "majority | votes (FER+ vote distributions).", choices=TARGET_MODES, panel=DATA)
    epochs: int = setting(40, "Epochs (paper: 40).", panel=OPTIM)
    batch_size: int = setting(64, "Global batch size.", short="-b", panel=OPTIM)
    lr: float | None = setting(None, "Initial learning rate (variant default: paper 0.01, official-code 0.1).", panel=OPTIM)
    momentum: float = setting(0.9, "SGD momentum.", panel=OPTIM)
    nesterov: bool = setting(False, "Nesterov momentum.", panel=OPTIM)
    weight_decay: float = setting(1e-4, "Weight decay.", panel=OPTIM)
    schedule: str = setting("step", "step (lr x gamma at --milestones) | cosine.", choices=SCHEDULES, panel=OPTIM)
    milestones: list[int] = setting(help="Epochs where the step schedule multiplies the lr by gamma, comma-separated "
                                    "(paper: 15,30).", csv=True, factory=lambda: [15, 30], panel=OPTIM)
    gamma: float = setting(0.1, "Step-schedule factor.", panel=OPTIM)
    warmup_epochs: float = setting(0.0, "Linear lr warm-up, in epochs.", panel=OPTIM)
    input_size: int = setting(224, "Backbone input size of every crop (paper: 224).", panel=MODEL)
    face_size: int | None = setting(None, "Size faces are decoded/cached at (default: the input size).", panel=PREP)
    stem: str = setting("imagenet", "imagenet (7x7/2 conv + max-pool) | no-maxpool (small faces).", choices=STEMS,
                        panel=MODEL)
    attention: str | None = setting(None, "Attention weights: sigmoid (paper) | softmax over the crops (official code). "
                                    "Default: the variant's.", choices=ATTENTIONS, panel=MODEL)
    normalize: str | None = setting(None, "Input normalisation inside the model: imagenet mean/std (paper variant) | "
                                    "none (official code). Default: the variant's.", choices=NORMALIZATIONS, panel=MODEL)
    crop_set: str | None = setting(None, "Fixed crop boxes: paper (center 0.9 and 0.85) | official-code (0.9 and 0.8). "
                                   "Default: the variant's.", choices=CROP_SET_NAMES, panel=MODEL)
    rb_margin: float | None = setting(None, "RB-loss margin alpha (variant default: paper 0.02, official-code 0.1).",
                                      panel=OPTIM)
    rb_weight: float = setting(1.0, "Weight of the RB-loss next to cross-entropy.", panel=OPTIM)
    label_smoothing: float = setting(0.0, "Label smoothing for majority targets.", panel=OPTIM)
    augment: bool = setting(True, "Flip/rotate/zoom/shift augmentation.", panel=AUG)
    flip: bool = setting(True, "Random horizontal flips (with --augment).", panel=AUG)
    rotate: float = setting(10.0, "Max rotation in degrees.", panel=AUG)
    scale_min: float = setting(0.9, "Smallest random zoom.", panel=AUG)
    scale_max: float = setting(1.1, "Largest random zoom.", panel=AUG)
    translate: float = setting(0.08, "Max shift, fraction of the face.", panel=AUG)
    erase: float = setting(0.0, "Random-erasing probability.", panel=AUG)
    random_min_scale: float = setting(0.7, "--crops random: smallest region side, fraction of the face (paper 0.7).",
                                      panel=MODEL)
    random_max_scale: float = setting(0.95, "--crops random: largest region side, fraction of the face (paper 0.95).",
                                      panel=MODEL)
    random_crops: int = setting(5, f"--crops random: regions drawn per face in training (paper: {PAPER_RANDOM_CROPS}).",
                                panel=MODEL)
    random_eval_crops: int = setting(5, "--crops random: regions per face at evaluation, one seeded draw shared by "
                                     "every face (paper: 6 to 120).", panel=MODEL)
    landmark_scale: float = setting(0.5, "--crops landmark: side of each region, fraction of the face (paper: "
                                    f"{PAPER_LANDMARK_SCALE}, a radius of 0.4).", panel=MODEL)
    landmark_clip: bool = setting(False, "--crops landmark: cut away the part of a region outside the face, as the "
                                  "paper does (off: regions keep their size, padded).", panel=MODEL)
    align: str = setting("bbox", "Face preprocessing: bbox (the face box made square) | dlib5 (dlib's 5-point "
                         "landmarks, similarity-aligned to a template, as the paper aligns with dlib).",
                         choices=ALIGNMENTS, panel=PREP)
    pretrained: str | None = setting(None, "ResNet-18 .pth (torchvision names; ImageNet or MS-Celeb-1M) for the "
                                     "backbone.", panel=MODEL)
    pretrained_head: bool = setting(False, "Also start the classifier from --pretrained, a fercurate checkpoint with the "
                                    "same labels (a baseline's FC is split over RAN's [F_i : F_m]); off: fresh head.",
                                    panel=MODEL)
    freeze: list[str] = setting(help=f"Backbone stages to keep fixed, comma-separated: {','.join(FREEZABLE)}.",
                                csv=True, factory=list, panel=OPTIM)
    seed: int = setting(0, "Seed of the data order, augmentation and initialisation.", panel=RUN)
    limit: int | None = setting(None, "Use only N training faces (a seeded sample), for quick trials.", panel=DATA)
    workers: int = setting(0, "DataLoader worker processes (0: cached faces are sliced in-process).",
                           flag="--loader-workers", panel=RUN)
    decode_workers: int | None = setting(None, "Worker processes decoding faces (default: all cores).",
                                         flag="--workers", short="-j", minimum=1, panel=RUN)
    cache: bool = setting(True, "Cache decoded faces under <workspace>/cache/faces.", panel=RUN)
    cache_dir: str | None = setting(None, "Where the face cache lives (default: <workspace>/cache/faces).", panel=RUN)
    device: str = setting("auto", "auto (CUDA if present, else CPU) | cpu | cuda | cuda:N.", panel=RUN)
    amp: str = setting("auto", "Mixed precision: auto (on for CUDA) | on | off.", choices=AMP_MODES, panel=RUN)
    threads: int | None = setting(None, "torch CPU threads (default: torch's choice).", panel=RUN)
    save_every_min: float = setting(10.0, "Also checkpoint mid-epoch every N minutes.", panel=RUN)
    log_every: int = setting(50, "Write a metrics.jsonl line every N optimiser steps (0: per epoch only).", panel=RUN)

    def resolved(self) -> "TrainConfig":
        """A copy with the variant's defaults filled in and every choice validated."""
        if self.variant not in VARIANTS:
            raise InputError(f"unknown variant {self.variant!r} (known: {', '.join(VARIANTS)})")
        values = dataclasses.asdict(self)
        for key, value in VARIANT_DEFAULTS[self.variant].items():
            if values[key] is None:
                values[key] = value
        if values["face_size"] is None:
            values["face_size"] = values["input_size"]
        cfg = TrainConfig(**values)
        check_choices(cfg)
        checks = [
            (cfg.manifest is not None and cfg.out is not None, "a run needs a manifest and an out folder"),
            (cfg.epochs >= 1 and cfg.batch_size >= 2, "--epochs must be >= 1 and --batch-size >= 2"),
            (cfg.input_size >= 16, "--input-size must be at least 16"),
            (cfg.arch == "ran" or cfg.crops == "fixed", "--crops random/landmark only apply to --arch ran"),
            (cfg.random_crops >= 1 and cfg.random_eval_crops >= 1, "--random-crops and --random-eval-crops must be >= 1"),
            (0 < cfg.random_min_scale <= cfg.random_max_scale <= 1,
             "--random-min-scale and --random-max-scale must satisfy 0 < min <= max <= 1"),
            (0 < cfg.landmark_scale <= 2, "--landmark-scale must be in (0, 2]"),
            (cfg.align == "bbox" or cfg.cache or cfg.crops != "landmark",
             "--crops landmark with --align dlib5 needs the face cache (it keeps each face's alignment; drop --no-cache)"),
            (cfg.pretrained is not None or not cfg.pretrained_head, "--pretrained-head needs --pretrained"),
            (set(cfg.freeze) <= set(FREEZABLE), f"--freeze takes backbone stages: {', '.join(FREEZABLE)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        return cfg


def config_fields() -> tuple[dataclasses.Field, ...]:
    """The fields of :class:`TrainConfig`, in declaration order (what the CLI turns into options)."""
    return dataclasses.fields(TrainConfig)


def config_from_state(values: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from a checkpoint's stored dict; settings added since take their defaults."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"checkpoint config has settings this fercurate does not know: {', '.join(unknown)}")
    return TrainConfig(**values)


def resumed_config(state: dict[str, Any], overrides: dict[str, Any], path: os.PathLike | str) -> TrainConfig:
    """The config a resumed run keeps: its checkpoint's, with the ``overrides`` that
    :data:`RESUME_OVERRIDABLE` allows; settings added since the checkpoint take their defaults (what that
    run used)."""
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


LABELS_HELP = (
    "Order of a TorchScript/ONNX model's outputs, where the model carries none (a sidecar <model>.json, ONNX "
    "metadata 'fercurate.labels', TorchScript labels.txt); one against the stored order is refused (see "
    "--override-contract). One of: a named order -- canonical (= affectnet: neutral, "
    "happy, sad, surprise, fear, disgust, anger, contempt), canonical7, fer2013 (angry, disgust, fear, happy, sad, "
    "surprise, neutral), ferplus (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt), rafdb "
    "(surprise, fear, disgust, happiness, sadness, anger, neutral), sfew (Angry Disgust Fear Happy Neutral Sad "
    "Surprise); a file, one class name per line (--labels classes.txt); or a comma list (--labels "
    "angry,disgust,fear,happy,sad,surprise,neutral). Aliases such as happiness, angry, surprised are accepted; "
    "outputs are permuted into canonical order before scoring."
)
CONTRACT, REPORT = "Model contract", "Report"


@dataclass
class EvalConfig:
    """Every setting of an evaluation (``fercurate eval``); the model to score is given beside it.

    ``report_dir`` left at None writes no report from the library; the command defaults it to a folder
    of the workspace (:func:`fercurate.ran.eval_report.report_folder`): ``<model folder>/eval/<model
    name>-<groups>`` for a model under ``runs/``, else ``eval/<model name>-<groups>``.
    """

    manifest: str | None = setting(None, "Manifest path or name (default: the one the subsets belong to, else the "
                                   "checkpoint's, else the workspace's only manifest).", short="-m", panel=DATA)
    splits: list[str] = setting(help="Split(s) to score, each its own group (default: test when no --subset is "
                                "given).", flag="--split", repeat=True, factory=list, panel=DATA)
    subsets: list[str] = setting(help="Subset(s) to score, each reported separately (repeatable). pose30 / pose45 / "
                                 "occlusion name the official RAN lists where imported; fercurate's own are "
                                 "pose45-estimated, occlusion-labelled.", flag="--subset", repeat=True, factory=list,
                                 panel=DATA)
    labels: str | list[str] | None = setting(None, LABELS_HELP, panel=CONTRACT)
    input_size: int | None = setting(None, "TorchScript/ONNX models: input size H = W in pixels (default: the model's "
                                     "input shape where it fixes one, else its sidecar or stored contract; none of "
                                     "them: an error, never a guess).", panel=CONTRACT)
    channels: str | None = setting(None, "TorchScript/ONNX models: the channels they take: gray (one) | rgb | bgr "
                                   "(default: a one-channel input shape means gray; else the stored contract).",
                                   choices=CHANNELS, panel=CONTRACT)
    layout: str | None = setting(None, "TorchScript/ONNX models: nchw (PyTorch) | nhwc (channels last: Keras, tf2onnx) "
                                 "(default: inferred from the model's input shape, and said so).", choices=LAYOUTS,
                                 panel=CONTRACT)
    input_norm: str | None = setting(None, "TorchScript/ONNX input values: unit ([0, 1]) | signed (x/127.5 - 1, i.e. "
                                     "[-1, 1], most Keras exports) | imagenet (ImageNet mean/std) | mean=M,std=S "
                                     "(on [0, 1] values; one value, or one per channel: mean=0.5,0.5,0.5,std=0.5,0.5,0.5)."
                                     , panel=CONTRACT)
    outputs: str | None = setting(None, "TorchScript/ONNX outputs: logits (softmax gives probabilities) | "
                                  "probabilities (rows summing to 1) | sigmoid (one independent score per class, "
                                  "normalised to sum to 1).", choices=OUTPUT_KINDS, panel=CONTRACT)
    override_contract: bool = setting(False, "Let the command line's contract values replace the ones stored with "
                                      "the model (its sidecar, ONNX metadata, TorchScript files) where they differ; "
                                      "without it a difference is refused, naming both.", panel=CONTRACT)
    label_rule: str | None = setting(None, "Vote-labelled manifests (FERPlus): which faces have a label. plurality: "
                                     "the most-voted class, tied faces left out; majority: FER+'s rule, a class "
                                     "holding more than half of the votes once single votes are dropped (default: "
                                     "FER+'s test protocol; RAN's FERPlus test list is exactly the faces it keeps). "
                                     "Faces a rule leaves out are listed in excluded.parquet.", choices=LABEL_RULES,
                                     panel=DATA)
    report_dir: str | None = setting(None, "Report folder (default, in the workspace: runs/<run>/eval/<model>-<groups> "
                                     "for a model under runs/, else eval/<model>-<groups>, e.g. eval/ran-pose45).",
                                     flag="--report", panel=REPORT)
    overwrite: bool = setting(False, "Replace an existing report in the report folder; without it an existing "
                              "report is refused.", panel=REPORT)
    save_probs: str | None = setting(None, "Write per-sample class probabilities (sample_id, prob_0.., canonical "
                                     "order) to this Parquet file.", panel=REPORT)
    draw_attention: int = setting(0, "Draw RAN's crop weights on N sample faces (attention.png).", panel=REPORT)
    bootstrap: int = setting(1000, "Bootstrap resamples for the 95% confidence intervals (0 = none).", panel=REPORT)
    seed: int = setting(0, "Seed of the bootstrap resamples.", panel=REPORT)
    batch_size: int = setting(128, "Faces per forward pass.", short="-b", panel=RUN)
    device: str = setting("auto", "auto | cpu | cuda.", panel=RUN)
    decode_workers: int | None = setting(None, "Worker processes decoding faces (default: all cores).",
                                         flag="--workers", short="-j", minimum=1, panel=RUN)
    cache: bool = setting(True, "Cache decoded faces under <workspace>/cache/faces.", panel=RUN)
    cache_dir: str | None = setting(None, "Where the face cache lives (default: <workspace>/cache/faces).", panel=RUN)
    strict: bool = setting(False, "Fail if any image cannot be read; without it those rows are reported and "
                           "skipped.", panel=RUN)


# option_name moved to fercurate.settings (with setting, which this module imports and uses)
__getattr__ = moved_module(__name__, "fercurate.settings")
