"""The Region Attention Network (RAN) and its ResNet-18 baseline: model, crops, losses, training, evaluation.

Modules (import what you need; all but ``config`` pull in torch). They import one another in one
direction only (``config`` <- ``crops``/``backbone``/``loss`` <- ``model``/``data`` <- ``batches``/``checkpoint``
<- ``predictor`` <- ``scoring`` <- ``eval_report`` <- ``evaluate``; ``predictor``/``optim``/``distributed`` <-
``train``; ``tests/test_ran_imports.py`` checks it):

* ``config``: :class:`~fercurate.ran.config.TrainConfig` and :class:`~fercurate.ran.config.EvalConfig`,
  every setting of a run or an evaluation with its help and flag (``fercurate train`` / ``eval`` build
  their options from them), and the names of every choice.
* ``backbone``: ResNet-18 with torchvision parameter names; ``load_pretrained`` reports missing/unexpected keys.
* ``crops``: the paper's fixed regions, random and landmark-based regions, one-call batch cropping.
* ``model``: RAN (self-attention, relation-attention) and the baseline, written like the paper's equations.
* ``loss``: cross-entropy (hard or vote-distribution targets) + the region-biased loss.
* ``data``: manifest rows -> targets, the decoded-face cache (faces cut by :mod:`fercurate.faces.crop`,
  optionally dlib-aligned), landmarks in face fractions.
* ``batches``: the epoch order, the batch loader and the training augmentation.
* ``train`` / ``checkpoint``: the resumable trainer (CPU, CUDA + AMP, torchrun/DDP) and its checkpoints;
  ``optim``: the lr schedule and frozen stages; ``distributed``: ranks, devices, sums over processes.
* ``metrics``: accuracy, CIs, confusion matrices; ``predictor``: any model (checkpoint, TorchScript, ONNX) with
  its contract (label order, input size, normalisation); ``scoring``: the scored faces and the groups
  (splits, subsets) over them, each with its paper condition and published rows; ``eval_report``: the
  tables and report files, attention maps; ``evaluate``: ``fercurate eval``, ``predict_proba``. Published
  figures to compare with are in :mod:`fercurate.published`.

Paper vs the authors' public code (``--variant official-code`` selects the code's choices; the README's
"RAN: paper vs fercurate" lists every remaining difference and its flag):

=====================  ============================================  ==========================================
                       paper (default)                               official code
=====================  ============================================  ==========================================
attention weights      sigmoid(F_i^T q0), sigmoid([F_i:F_m]^T q1)    the same sigmoids, then softmax over crops
RB-loss margin alpha   0.02                                          0.1 (FERPlus script; 0.03 for AffectNet)
crops                  TL/TR/center-down 0.75, center 0.9 and 0.85   TL/TR/center-down 0.75, center 0.9 and 0.8
input normalisation    ImageNet mean/std (the paper is silent)       none (pixels in [0, 1])
learning rate          0.01                                          0.1 (FERPlus)
=====================  ============================================  ==========================================
"""
