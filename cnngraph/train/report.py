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


def write_plot(path: Path, history: list[dict], title: str) -> None:
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    epochs = [row["epoch"] for row in history]
    for ax, metric, label in zip(fig.subplots(1, 2), ("loss", "acc"), ("loss", "accuracy")):
        for split in ("train", "test"):
            ax.plot(epochs, [row[f"{split}_{metric}"] for row in history], marker="o", markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(one_line(title))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
