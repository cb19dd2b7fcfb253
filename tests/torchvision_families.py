"""The eleven torchvision families issue 13 names, exported by PyTorch and imported: shared by
tests/test_torchvision_import.py (small inputs) and bench/torchvision_import.py (the table, 224x224).

Each family is built with random weights and BatchNorm statistics drawn away from 0 and 1, exported with
the TorchScript exporter at opset 17 (a dynamic batch), imported, and run beside onnxruntime on the same
file. The summary is "correct" when the imported parameter count equals PyTorch's (from an unfolded
export, which keeps the BatchNorms), every join is aligned, and the map entering the classifier's global
pooling has PyTorch's total stride of 32.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

import cnngraph
from cnngraph.alignment import ALIGNED, joins
from cnngraph.analysis import receptive_fields
from cnngraph.frontends.onnx_import import from_model
from tests.onnx_models import onnxruntime_run

FAMILIES = ("mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x1_0", "mnasnet0_5",
            "regnet_x_400mf", "regnet_y_400mf", "resnext50_32x4d", "wide_resnet50_2", "inception_v3",
            "convnext_tiny")
TOTAL_STRIDE = 32  # every family above downsamples 224 to 7 (Inception v3: 299 to 8) before pooling
GLOBAL_POOLS = ("GlobalAvgPool", "ReduceMean")


@dataclass
class Result:
    family: str
    imports: str = "no"
    runs: str = "no"
    max_rel: float = float("nan")
    summary: str = "no"
    note: str = ""


def build(torch, torchvision, family: str):
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": True} if family == "inception_v3" else {}
    model = getattr(torchvision.models, family)(weights=None, **kwargs).eval()
    for m in model.modules():  # statistics away from 0 and 1, so folding shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
    return model


def export(torch, model, size: int, **kwargs):
    f = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), f, dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, **kwargs)
    import onnx

    return onnx.load_from_string(f.getvalue())


def check(torch, torchvision, family: str, size: int, batch: int = 2) -> Result:
    """Import, run against onnxruntime, and check the summary of one family; failures are recorded."""
    result = Result(family)
    model = build(torch, torchvision, family)
    folded = export(torch, model, size)
    try:
        graph = from_model(folded)
    except cnngraph.CnnGraphError as e:
        result.note = str(e)
        return result
    result.imports = "yes"
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    try:
        got = cnngraph.compile(graph)(x)
    except cnngraph.CnnGraphError as e:
        result.note = str(e)
        return result
    result.runs = "yes"
    want = onnxruntime_run(folded, {"image": x})[0]
    result.max_rel = float(np.abs(got - want).max() / np.abs(want).max())
    result.summary, result.note = summary_check(graph, from_model(export(torch, model, size, do_constant_folding=False,
                                                                         training=torch.onnx.TrainingMode.PRESERVE)),
                                                sum(p.numel() for p in model.parameters()))
    return result


def summary_check(folded, unfolded, torch_params: int) -> tuple[str, str]:
    """("yes", "") when the summary's geometry and parameter count are PyTorch's, else ("no", why)."""
    params = unfolded.param_count()  # trainable parameters, as the summary's "Total params"
    if params != torch_params:
        return "no", f"{params:,} parameters, PyTorch {torch_params:,}"
    fields = receptive_fields(folded)
    bad = [j for j in joins(folded, fields) if j.status != ALIGNED]
    if bad:
        return "no", f"join '{bad[0].node.name}': {bad[0].describe()}"
    pooled = [n for n in folded.nodes if n.op in GLOBAL_POOLS]
    jump = fields[pooled[-1].inputs[0]].jump if pooled else None
    if jump != (TOTAL_STRIDE, TOTAL_STRIDE):
        return "no", f"stride into the last global pool {jump}, expected {TOTAL_STRIDE}"
    return "yes", ""
