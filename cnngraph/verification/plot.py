"""The ROC curve as a PNG: true accept rate against false accept rate, the chance diagonal, the equal
error rate marked where the curve crosses the anti-diagonal, and the chosen threshold's operating point."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cnngraph.io import atomic_write_bytes
from cnngraph.train.report import one_line
from cnngraph.verification.open_set import Report


def write_roc(path: str | Path, report: Report, title: str) -> None:
    fig = Figure(figsize=(5.5, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    curve = report.curve
    ax.plot(curve.fpr, curve.tpr, label=f"ROC (AUC {report.auc:.4f})")
    ax.plot([0, 1], [0, 1], color="tab:gray", linestyle=":", label="chance")
    ax.plot([0, 1], [1, 0], color="tab:gray", linestyle="--", linewidth=0.8)
    ax.plot([report.eer], [1 - report.eer], "o", color="tab:red", label=f"EER {report.eer:.2%}")
    accepted = curve.thresholds <= report.threshold
    k = int(accepted.sum()) - 1
    ax.plot([curve.fpr[k]], [curve.tpr[k]], "s", color="tab:green",
            label=f"threshold {report.threshold:.3f}: accuracy {report.accuracy:.2%}")
    ax.set_xlabel("false accept rate (different pairs called same)")
    ax.set_ylabel("true accept rate (same pairs called same)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(one_line(title), fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
