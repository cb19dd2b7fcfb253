"""What a run leaves for people: ``metrics.csv`` (one row per epoch) and ``curves.png``.

Both are rewritten whole from the run's history after every epoch (atomically), so a resumed run
continues the same files and an interrupted write never leaves half a table. The plot uses
matplotlib's object API with the Agg canvas: no pyplot, no global backend, no display needed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnngraph.io import atomic_write_bytes

TITLE_CHARS = 120  # a title is one line: a long graph name is cut, not laid out for seconds per epoch
FIELDS = ("epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_s", "seconds")


def write_csv(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in FIELDS} for row in history)
    atomic_write_bytes(path, buf.getvalue().encode())


def one_line(title: str) -> str:
    return title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 1] + "…"


def curves(history: list[dict], title: str) -> Figure:
    """Loss, accuracy (in percent) and learning rate per epoch; the best test accuracy's epoch is marked."""
    fig = Figure(figsize=(13, 4), layout="constrained")
    FigureCanvasAgg(fig)
    epochs = [row["epoch"] for row in history]
    best = max(history, key=lambda row: row["test_acc"])["epoch"] if history else None
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    for ax, metric, label, scale in ((loss_ax, "loss", "loss", 1), (acc_ax, "acc", "accuracy (%)", 100)):
        for split in ("train", "test"):
            ax.plot(epochs, [scale * row[f"{split}_{metric}"] for row in history], marker="o", markersize=3,
                    label=split)
        ax.set_ylabel(label)
    lr_ax.plot(epochs, [row["lr"] for row in history], marker="o", markersize=3, color="tab:gray", label="lr")
    lr_ax.set_ylabel("learning rate (end of epoch)")
    for ax in (loss_ax, acc_ax, lr_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.grid(alpha=0.3)
        if best is not None:
            ax.axvline(best, color="tab:green", linestyle="--", linewidth=1, label=f"best test accuracy (epoch {best})")
        ax.legend()
    fig.suptitle(one_line(title))
    return fig


def write_plot(path: Path, history: list[dict], title: str) -> None:
    buf = io.BytesIO()
    curves(history, title).savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
