"""A graph as a picture: one box per layer with its op and output shape, joins (adds, concatenations,
a convolution with a fused residual add) filled, fused nodes as one box that lists what they fuse,
graph outputs outlined twice.

DOT text is written here (and escaped here) so it needs nothing installed; SVG and PNG go through
Graphviz's ``dot`` when it is on the PATH and otherwise through networkx and matplotlib (both
dependencies) with the layers stacked from the inputs down.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from cnngraph.alignment import JOIN_OPS
from cnngraph.errors import DrawError
from cnngraph.ir import Graph, Node
from cnngraph.ops.base import fmt_shape

FORMATS = (".dot", ".svg", ".png")
JOIN_COLOUR, FUSED_COLOUR, PLAIN_COLOUR, INPUT_COLOUR = "#ffd966", "#b6d7a8", "#ffffff", "#cfe2f3"


def fused_parts(node: Node) -> list[str]:
    """What a fused node computes, in order (empty for a plain node)."""
    if node.op not in ("FusedConv2d", "FusedLinear"):
        return []
    a = node.attrs
    parts = [f"conv {'x'.join(map(str, a['kernel_size']))}" if node.op == "FusedConv2d" else "linear"]
    parts += ["bias"] if a.get("bias") else []
    parts += ["residual add"] if a.get("residual") else []
    parts += [a["activation"]] if a.get("activation") else []
    return parts


def is_join(node: Node) -> bool:
    return (node.op in JOIN_OPS and len(node.inputs) > 1) or bool(node.attrs.get("residual"))


def labels(graph: Graph) -> dict[str, list[str]]:
    """The lines of every box, inputs first: name, op (or what a fused node fuses), output shape."""
    boxes = {name: [name, "input", fmt_shape(t.shape)] for name, t in graph.inputs.items()}
    for node in graph.nodes:
        parts = fused_parts(node)
        boxes[node.name] = [node.name, " + ".join(parts) if parts else node.op,
                            fmt_shape(node.type.shape)]
    return boxes


def colour(graph: Graph, name: str) -> str:
    if name in graph.inputs:
        return INPUT_COLOUR
    node = graph.node(name)
    return JOIN_COLOUR if is_join(node) else FUSED_COLOUR if fused_parts(node) else PLAIN_COLOUR


def _quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as DOT's centred line breaks."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """The graph in Graphviz's DOT language: one node per graph input and layer, one edge per layer input."""
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for name, text in labels(graph).items():
        extra = ", peripheries=2" if name in graph.outputs else ""
        lines.append(f"  {_quote(name)} [label={_quote(chr(10).join(text))}, fillcolor={_quote(colour(graph, name))}"
                     f"{extra}];")
    for node in graph.nodes:
        lines += [f"  {_quote(v)} -> {_quote(node.name)};" for v in node.inputs]
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw(graph: Graph, path: str | Path) -> str:
    """Write ``graph`` to ``path`` (.dot, .svg or .png); returns what drew it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DrawError(f"cannot draw to '{path.name}': the file must end in {', '.join(FORMATS)}")
    text = to_dot(graph)
    if suffix == ".dot":
        path.write_text(text)
        return "DOT text"
    if shutil.which("dot"):
        done = subprocess.run(["dot", f"-T{suffix[1:]}", "-o", str(path)], input=text, text=True,
                              capture_output=True)
        if done.returncode != 0:
            raise DrawError(f"Graphviz's dot failed on '{path.name}': {done.stderr.strip().splitlines()[-1:]}")
        return "Graphviz"
    _matplotlib(graph, path)
    return "matplotlib (Graphviz's dot is not installed)"


def _matplotlib(graph: Graph, path: Path) -> None:
    """Boxes on rows by depth (the longest path from an input), centred per row, edges as arrows, top to bottom."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = nx.MultiDiGraph()
    g.add_nodes_from(labels(graph))
    g.add_edges_from((v, node.name) for node in graph.nodes for v in node.inputs)
    depth: dict[str, int] = {}
    for name in nx.topological_sort(g):
        depth[name] = max((depth[p] + 1 for p in g.predecessors(name)), default=0)
    rows: dict[int, list[str]] = {}
    for name, d in depth.items():
        rows.setdefault(d, []).append(name)
    pos = {name: (i - (len(row) - 1) / 2, -d) for d, row in rows.items() for i, name in enumerate(row)}
    widest = max(len(row) for row in rows.values())
    fig, ax = plt.subplots(figsize=(2.2 * widest + 1.5, 0.62 * len(rows) + 0.5))
    for v, w in g.edges():  # an edge that skips rows bows out to the side, past the boxes between
        bend = 0.0 if depth[w] - depth[v] == 1 else -0.45
        ax.annotate("", xy=pos[w], xytext=pos[v],
                    arrowprops=dict(arrowstyle="-|>", color="#555555", lw=0.8, shrinkA=14, shrinkB=14,
                                    connectionstyle=f"arc3,rad={bend}"))
    text = labels(graph)
    for name, (x, y) in pos.items():
        ax.text(x, y, "\n".join(text[name]), ha="center", va="center", fontsize=6,
                bbox=dict(boxstyle="round", fc=colour(graph, name),
                          ec="black", lw=1.6 if name in graph.outputs else 0.6))
    ax.set_xlim(-widest / 2 - 0.6, widest / 2 + 0.6)  # text does not widen the axes: the rows set them
    ax.set_ylim(-len(rows) + 0.5, 0.5)
    ax.set_axis_off()
    fig.savefig(path, format=path.suffix[1:], dpi=110, bbox_inches="tight")
    plt.close(fig)
