"""Train a small RAN, score it on the test split and on fercurate's own Pose subset, and write the report.

    python examples/train_eval_report.py [--workdir DIR] [--epochs N]

On real data use the paper's defaults (224 px, 40 epochs) and a GPU: TrainConfig's defaults are the
paper's; this example shrinks them so it finishes in a minute on a laptop CPU.
"""

from __future__ import annotations

from _workdir import native_dataset, parse_args
from fercurate import subsets
from fercurate.ingest import ingest
from fercurate.pose.runner import run_pose
from fercurate.ran.config import EvalConfig, TrainConfig
from fercurate.ran.evaluate import evaluate
from fercurate.ran.train import train
from fercurate.report.build import build_report


def main() -> None:
    args = parse_args(__doc__)
    ingest("ferplus", native_dataset("ferplus", args.workdir, args.faces), "manifests/ferplus.parquet")
    run_pose("manifests/ferplus.parquet")
    subsets.build("manifests/ferplus.parquet", pose=[15, 30])

    # Same as: fercurate train --manifest ferplus --split train --val-split val --input-size 32 --epochs 2 ...
    config = TrainConfig(
        manifest="manifests/ferplus.parquet", out="runs/ran-example", splits=["train"], val_splits=["val"],
        input_size=32, epochs=2, milestones=[1], lr=0.05, batch_size=16, seed=0,
    )
    trained = train(config)
    print(f"checkpoint: {trained.checkpoint}")

    # Same as: fercurate eval --model runs/ran-example/ran.pt --split test --subset pose15-estimated --report ...
    # (with the RAN authors' lists imported, --subset pose30 / pose45 / occlusion score the papers' own lists)
    settings = EvalConfig(splits=["test"], subsets=["pose15-estimated"], report_dir="runs/ran-example/eval",
                          overwrite=True, bootstrap=200)
    result = evaluate(trained.checkpoint, settings, workspace=".")
    for group in result.groups:
        print(f"{group['group']:<12} n={group['n']:<4} accuracy {100 * group['accuracy']:.1f}%")

    # Same as: fercurate report --out report  (one HTML page for everything the workspace holds)
    report = build_report("report")
    print(f"report: {report.index}")


if __name__ == "__main__":  # worker processes re-import this file
    main()
