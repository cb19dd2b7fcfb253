"""Open-set verification against wall time: train on some identities, verify pairs of the others.

    python bench/bench_verification.py [--model deepface_small] [--data digits] [--train-classes 0-6]
                                       [--epochs 30] [--loss cross-entropy|triplet|contrastive] [--margin M]
                                       [--per-identity K] [--batch B] [--optimizer O] [--lr LR] [--crop N]
                                       [--embedding LAYER] [--aim 0.97] [--out runs/bench-verification]

The recipe of `cnngraph train MODEL --task verify` with the same options (its defaults otherwise), on the
NumPy backend. After every epoch the open-set figures are measured (ROC AUC and EER on the unseen
identities' test pairs, accuracy at the threshold chosen on the other half's pairs) and printed with
the wall time so far (training and these evaluations); at the end, the best AUC and the first epoch and
wall time at which the AUC reached --aim, if it did. The last epoch's ROC is written to OUT/roc.png.
A benchmark, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from cnngraph import models
from cnngraph.train import TrainConfig, Trainer
from cnngraph.verification.embedding import embedding_graph
from cnngraph.verification.open_set import evaluate, parse_classes
from cnngraph.verification.plot import write_roc
from cnngraph.verification.task import embedder, training_graph, verification_splits

# the `cnngraph train` options the bench passes on to TrainConfig when given
OPTIONS = {"optimizer": str, "lr": float, "batch": int, "crop": int, "loss": str, "margin": float, "per_identity": int,
           "embedding": str}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="deepface_small")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--train-classes", default="0-6")
    parser.add_argument("--epochs", type=int, default=30)
    for name, kind in OPTIONS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help="as for cnngraph train")
    parser.add_argument("--aim", type=float, default=0.97, help="the ROC AUC to reach (default 0.97)")
    parser.add_argument("--out", default=None, help="folder for the run and roc.png (default: a temporary one)")
    args = parser.parse_args()
    start = time.perf_counter()
    given = {k: getattr(args, k) for k in OPTIONS if getattr(args, k) is not None}
    config = TrainConfig(data=args.data, epochs=args.epochs, task="verify", train_classes=args.train_classes, **given)
    graph = training_graph(models.build(args.model, num_classes=len(parse_classes(args.train_classes))), config)
    shape = next(iter(graph.inputs.values())).shape[1:]
    splits, unseen = verification_splits(args.data, shape, args.train_classes)
    out = args.out or tempfile.mkdtemp(prefix="bench-verification-")
    trainer = Trainer(graph, splits, config, out)
    print(f"{args.model} on {args.data}, loss {config.loss}: trains on {len(splits.train)} images of classes "
          f"{args.train_classes}, verifies {len(unseen)} images of the others; cpu count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print("epoch  wall s  test loss (known)  ROC AUC     EER  accuracy at threshold")
    best, reached = (0.0, 0), None
    for epoch in range(1, args.epochs + 1):
        config.epochs = epoch  # one more epoch of the schedule planned for --epochs
        trainer.fit()
        report = evaluate(embedder(embedding_graph(trainer.model.to_graph(), config.embedding), trainer.normalize),
                          unseen, config.seed)
        wall = time.perf_counter() - start
        print(f"{epoch:5d}  {wall:6.1f}  {trainer.history[-1]['test_loss']:17.4f}  "
              f"{report.auc:7.4f}  {report.eer:6.2%}  {report.accuracy:8.2%} at {report.threshold:.3f}", flush=True)
        best = max(best, (report.auc, epoch))
        if reached is None and report.auc >= args.aim:
            reached = (epoch, wall)
    write_roc(os.path.join(out, "roc.png"), report, f"{args.model}: unseen classes of {args.data}")
    print(report.summary())
    print(f"best ROC AUC {best[0]:.4f} at epoch {best[1]}; " + (f"AUC {args.aim} first reached at epoch {reached[0]}, "
          f"{reached[1]:.1f} s" if reached else f"AUC {args.aim} not reached"))
    print(f"wall {time.perf_counter() - start:.1f} s; load average {os.getloadavg()[0]:.1f} at the end; ROC in "
          f"{os.path.join(out, 'roc.png')}")


if __name__ == "__main__":
    main()
