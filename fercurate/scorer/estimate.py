"""The expected training time, measured on the first batches and reported once, before most of it runs."""

from __future__ import annotations

import time
from collections.abc import Callable

TIMED_BATCHES = 3  # batches timed (after one untimed warm-up batch) to estimate the duration


class TrainingEstimate:
    """Times the first batches of training and reports the expected total, once: the first (warm-up)
    batch as measured plus the time per batch of the next :data:`TIMED_BATCHES` times the rest.

    A fine-tuning batch costs about half a pre-training one (one forward pass instead of two, no
    occluders to draw); when pre-training is skipped (reused weights), fine-tuning batches are timed.
    """

    FINETUNE_SHARE = 0.5

    def __init__(self, steps: int, finetune_batches: int, device: str, report: Callable[[str], None] | None) -> None:
        self.steps, self.finetune_batches, self.device, self.report = steps, finetune_batches, device, report
        self.start: float | None = None
        self.first = 0.0
        self.phase = ""
        self.timed_from = 0
        self.estimate_s: float | None = None
        self.line: str | None = None

    def tick(self, done: int, phase: str) -> None:
        """Called before batch ``done`` (0-based) of ``phase`` and once after the phase's last batch."""
        if self.line is not None:
            return
        total = self.steps if phase == "pre-training" else self.finetune_batches
        if self.start is None or phase != self.phase:  # time from the second batch of a phase on
            now = time.perf_counter()
            if phase != self.phase or done == 0:
                self.first, self.phase, self.start = now, phase, None
            if done == 1 or (done == total == 1):
                self.start, self.timed_from = now, done
            return
        timed = done - self.timed_from
        if timed >= TIMED_BATCHES or (done == total and timed > 0):
            per = (time.perf_counter() - self.start) / timed
            pre = self.steps if phase == "pre-training" else 0
            fine = self.finetune_batches * (self.FINETUNE_SHARE if phase == "pre-training" else 1.0)
            warm_up = self.start - self.first  # the first batch (allocations, kernel choice) runs slower
            self._emit(warm_up + per * (pre + fine - 1), per, phase)

    def report_if_pending(self) -> None:
        """Too few batches to time (at most one per phase): say so rather than stay silent."""
        if self.line is None:
            self._emit(0.0, 0.0, "none")

    def _emit(self, seconds: float, per: float, phase: str) -> None:
        self.estimate_s = round(seconds, 1)
        if phase == "none":
            self.line = (f"expected training time: a few seconds ({self.steps:,} pre-training + "
                         f"{self.finetune_batches:,} fine-tuning batches, too few to time)")
        else:
            minutes, secs = divmod(int(round(seconds)), 60)
            self.line = (
                f"expected training time: ~{minutes} min {secs:02d} s on {self.device} "
                f"({self.steps:,} pre-training + {self.finetune_batches:,} fine-tuning batches; "
                f"{per:.2f} s per {phase} batch measured)"
            )
        if self.report is not None:
            self.report(self.line)


__all__ = ["TIMED_BATCHES", "TrainingEstimate"]
