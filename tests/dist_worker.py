"""One rank of the data-parallel tests, run by mpiexec:
``python -m tests.dist_worker SCENARIO OUT [--fault kill|hang --at CALL] [--rundir D] [--resume]``.

Trains a scenario's model through the Trainer with an MPI communicator (or resumes the run in
``--rundir``); rank 0 writes what the tests compare with one process (per-step losses, the epoch
history, the final parameters) to OUT (.npz, and OUT.json). ``--fault`` makes rank 1 die
(SIGKILL) or stop (SIGSTOP) at its CALL-th call of the loss (evaluation calls it too).
"""

from __future__ import annotations

import argparse
import json
import os
import signal

import numpy as np

from cnngraph import models
from cnngraph.frontends import dsl
from cnngraph.train import Splits, TrainConfig, Trainer, load_dataset
from tests.test_train_loop import blobs


def bn_net():
    x = dsl.input("image", (1, 8, 8))
    y = dsl.relu(dsl.batch_norm(dsl.conv2d(x, 6, 3, padding=1, bias=False, name="conv"), name="bn"))
    y = dsl.batch_norm(dsl.conv2d(y, 6, 3, padding=1, bias=False, name="conv2"), name="bn2")
    return dsl.Model(x, dsl.linear(dsl.flatten(dsl.max_pool2d(dsl.relu(y), 2)), 3, name="fc"), name="bn_net", seed=0)


def scenario(name: str):
    """(graph, splits, config). LeNet-5 on 245 digits at batch 32: the last batch (21) splits 11 + 10."""
    if name in ("lenet", "lenet_half"):
        digits = load_dataset("digits", (1, 32, 32))
        splits = Splits(digits.train.take(np.arange(245)), digits.test.take(np.arange(100)), "digits")
        dtype = "float16" if name == "lenet_half" else "float32"
        return models.build("lenet5"), splits, TrainConfig(epochs=2, batch=32, lr=0.05, crop=2, prefetch=0,
                                                           dtype=dtype)
    sync = name == "bn_sync"
    return bn_net(), Splits(blobs(90, 0), blobs(30, 1), "blobs"), TrainConfig(epochs=2, batch=12, lr=0.1, crop=1,
                                                                             flip=True, sync_bn=sync)


def train(name: str, rundir, communicator=None, loss=None) -> Trainer:
    graph, splits, config = scenario(name)
    trainer = Trainer(graph, splits, config, rundir, loss=loss, communicator=communicator)
    trainer.fit()
    return trainer


def result(trainer: Trainer) -> tuple[dict, dict]:
    """(arrays, JSON): the final parameters and running statistics; losses per step and the history."""
    history = [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in trainer.history]
    return trainer._params(), {"losses": trainer.step_losses, "history": history}


class FaultAt:
    """The run's loss, on rank 1 killing or stopping this process at the ``at``-th call."""

    def __init__(self, fault: str, at: int, rank: int, loss):
        self.fault, self.at, self.rank, self.loss, self.calls = fault, at, rank, loss, 0

    def __call__(self, outputs, targets):
        self.calls += 1
        if self.rank == 1 and self.calls == self.at:
            os.kill(os.getpid(), signal.SIGKILL if self.fault == "kill" else signal.SIGSTOP)
        return self.loss(outputs, targets)


def main() -> None:
    from cnngraph.train.dist import connect

    p = argparse.ArgumentParser()
    p.add_argument("scenario")
    p.add_argument("out")
    p.add_argument("--fault", choices=["kill", "hang"])
    p.add_argument("--at", type=int, default=3)
    p.add_argument("--rundir")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args()
    comm = connect()
    graph, splits, config = scenario(args.scenario)
    loss = FaultAt(args.fault, args.at, comm.rank, config.make_loss()) if args.fault else None
    try:
        if args.resume:
            trainer = Trainer.resume(args.rundir, splits=splits, communicator=comm)
            trainer.fit()
        else:
            trainer = train(args.scenario, args.rundir or f"{args.out}.rank{comm.rank}", comm, loss)
    except Exception as e:  # noqa: BLE001 - as the CLI does: one line, and the job stops
        comm.fail(f"rank {comm.rank}: {e}")
    if comm.rank == 0:
        arrays, doc = result(trainer)
        np.savez(args.out, **arrays)
        with open(args.out + ".json", "w", encoding="utf-8") as f:
            json.dump(doc, f)
    comm.close()


if __name__ == "__main__":
    main()
