"""PyTorch's state_dict keys recovered from the node names of a PyTorch ONNX export.

An eval-mode export folds each BatchNorm into the convolution before it and names the folded tensors
``onnx::Conv_538``: names no state_dict has. The node names still carry the module scope, one
component per module level, each the child's name qualified from the nearest unnamed container:
``/layer1/layer1.0/conv1/Conv`` is module ``layer1.0.conv1`` and ``/features/features.1/conv/conv.0/
conv.0.0/Conv`` is ``features.1.conv.0.0``. A component that extends the one before it with
``.<child>`` replaces it; any other component is a child of everything so far (attribute names
cannot contain dots, so the rule is unambiguous).
"""

from __future__ import annotations

GENERATED_PREFIX = "onnx::"  # the exporter's names for tensors it made (folded BN, deduplicated constants)


def is_generated(initializer: str) -> bool:
    """Whether ``initializer`` is a name the exporter invented rather than a state_dict key."""
    return initializer.startswith(GENERATED_PREFIX)


def module_path(node_name: str) -> str | None:
    """The dotted module name of an exported node (``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``),
    or None when the name is not a PyTorch scope (no leading slash, or no module around the op)."""
    if not node_name.startswith("/"):
        return None
    *scopes, _op = node_name[1:].split("/")
    path: list[str] = []
    for scope in scopes:
        if not scope:
            return None
        if path and scope.startswith(path[-1] + "."):
            path[-1] = scope
        else:
            path.append(scope)
    return ".".join(path) or None
