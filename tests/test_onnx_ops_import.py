"""ONNX nodes as other tools write them (every opset form, attribute combinations, constant inputs)
imported and run in the NumPy executor next to onnxruntime on the original model."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from cnngraph.errors import OnnxImportError
from cnngraph.frontends.onnx_import import from_model
from tests.onnx_models import assert_import_matches, model_of, node_model

# Inputs are standard normal: Log and Sqrt of the negative ones are NaN on both sides, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

IMG = (4, 7, 9)
FLOAT = TensorProto.FLOAT
R = np.random.default_rng(7)


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


def i64(*values):
    return np.array(values, np.int64)


W = f32(6, 4, 3, 3)
CASES = [
    # id, op, opset, runtime input shapes, attributes, initializers (None: an empty input)
    ("conv", "Conv", 17, [IMG], dict(pads=[1, 0, 2, 1], strides=[2, 1]), dict(w=W, b=f32(6))),
    ("conv-groups-dilation", "Conv", 11, [IMG], dict(group=2, dilations=[2, 1], kernel_shape=[3, 3]),
     dict(w=f32(6, 2, 3, 3))),
    ("conv-same-upper", "Conv", 13, [IMG], dict(auto_pad="SAME_UPPER", strides=[2, 2]), dict(w=W)),
    ("conv-same-lower", "Conv", 9, [IMG], dict(auto_pad="SAME_LOWER", strides=[2, 2]), dict(w=W)),
    ("conv-valid", "Conv", 7, [IMG], dict(auto_pad="VALID"), dict(w=W)),
    ("conv-transpose", "ConvTranspose", 17, [IMG], dict(strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 1]),
     dict(w=f32(4, 3, 3, 3), b=f32(3))),
    ("conv-transpose-groups", "ConvTranspose", 11, [IMG], dict(group=2, dilations=[2, 2]), dict(w=f32(4, 1, 2, 3))),
    ("conv-transpose-output-shape", "ConvTranspose", 13, [IMG], dict(strides=[2, 2], output_shape=[14, 17]),
     dict(w=f32(4, 2, 3, 3))),
    ("gemm", "Gemm", 13, [(12,)], dict(transB=1), dict(w=f32(5, 12), c=f32(5))),
    ("gemm-transposed-scaled", "Gemm", 9, [(12,)], dict(alpha=0.5, beta=2.0), dict(w=f32(12, 5), c=f32(1, 5))),
    ("gemm-scalar-c", "Gemm", 11, [(12,)], {}, dict(w=f32(12, 5), c=np.float32(0.3))),
    ("gemm-no-c", "Gemm", 13, [(12,)], dict(transB=1), dict(w=f32(5, 12))),
    ("matmul", "MatMul", 13, [(12,)], {}, dict(w=f32(12, 5))),
    ("batchnorm", "BatchNormalization", 15, [IMG], dict(epsilon=1e-3),
     dict(s=f32(4), b=f32(4), m=f32(4), v=np.abs(f32(4)) + 0.5)),
    ("batchnorm-7", "BatchNormalization", 7, [IMG], dict(spatial=1),
     dict(s=f32(4), b=f32(4), m=f32(4), v=np.abs(f32(4)) + 0.5)),
    ("batchnorm-2d", "BatchNormalization", 9, [(6,)], {}, dict(s=f32(6), b=f32(6), m=f32(6), v=np.abs(f32(6)) + 1)),
    ("lrn", "LRN", 13, [IMG], dict(size=3, alpha=1e-3, beta=0.6, bias=1.5), {}),
    ("relu", "Relu", 7, [IMG], {}, {}),
    ("leaky-relu", "LeakyRelu", 16, [IMG], dict(alpha=0.3), {}),
    ("leaky-relu-default", "LeakyRelu", 7, [IMG], {}, {}),
    ("elu", "Elu", 7, [IMG], dict(alpha=0.7), {}),
    ("sigmoid", "Sigmoid", 13, [IMG], {}, {}),
    ("tanh", "Tanh", 13, [IMG], {}, {}),
    ("softmax", "Softmax", 13, [IMG], {}, {}),
    ("softmax-axis1", "Softmax", 13, [IMG], dict(axis=1), {}),
    ("softmax-11-coerced", "Softmax", 11, [IMG], {}, {}),  # axis 1 of an image: over C*H*W at once
    ("softmax-11-axis2", "Softmax", 11, [IMG], dict(axis=2), {}),
    ("log-softmax-11-last", "LogSoftmax", 11, [IMG], dict(axis=-1), {}),
    ("clip-attrs", "Clip", 9, [IMG], dict(min=-0.5, max=0.5), {}),
    ("clip-inputs", "Clip", 13, [IMG], {}, dict(lo=np.float32(0), hi=np.float32(6))),
    ("clip-min-only", "Clip", 11, [IMG], {}, dict(lo=np.float32(-0.2))),
    ("clip-max-only", "Clip", 12, [IMG], {}, dict(lo=None, hi=np.float32(0.2))),
    ("maxpool", "MaxPool", 12, [IMG], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), {}),
    ("maxpool-ceil-dilation", "MaxPool", 10, [IMG], dict(kernel_shape=[2, 3], ceil_mode=1, strides=[2, 2]), {}),
    ("maxpool-same", "MaxPool", 8, [IMG], dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER",
                                                 storage_order=0), {}),
    ("maxpool-default-stride", "MaxPool", 7, [IMG], dict(kernel_shape=[2, 2]), {}),
    ("avgpool", "AveragePool", 7, [IMG], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1]), {}),
    ("avgpool-include-pad-ceil", "AveragePool", 19, [IMG],
     dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 1, 0, 0], count_include_pad=1, ceil_mode=1), {}),
    ("global-avgpool", "GlobalAveragePool", 7, [IMG], {}, {}),
    ("global-maxpool", "GlobalMaxPool", 7, [IMG], {}, {}),
    ("flatten", "Flatten", 9, [IMG], {}, {}),
    ("flatten-axis2-unit", "Flatten", 13, [(1, 7, 9)], dict(axis=2), {}),
    ("reshape", "Reshape", 13, [IMG], {}, dict(s=i64(0, 2, -1))),
    ("reshape-batch-by-minus-one", "Reshape", 13, [IMG], {}, dict(s=i64(-1, 63, 4))),
    ("transpose", "Transpose", 13, [IMG], dict(perm=[0, 2, 3, 1]), {}),
    ("transpose-unit-axes", "Transpose", 7, [(1, 7, 9)], dict(perm=[0, 2, 1, 3]), {}),
    ("squeeze-11", "Squeeze", 11, [(1, 7, 1)], dict(axes=[1, 3]), {}),
    ("squeeze-13", "Squeeze", 13, [(1, 7, 1)], {}, dict(a=i64(-1))),
    ("unsqueeze-11", "Unsqueeze", 11, [(7, 9)], dict(axes=[1]), {}),
    ("unsqueeze-13", "Unsqueeze", 13, [(7, 9)], {}, dict(a=i64(3))),
    ("concat", "Concat", 11, [IMG, (2, 7, 9)], dict(axis=-3), {}),
    ("slice-attrs", "Slice", 9, [IMG], dict(starts=[1, -4], ends=[3, 1000], axes=[1, 3]), {}),
    ("slice-inputs", "Slice", 13, [IMG], {}, dict(s=i64(0, 1, -8), e=i64(2**62, 7, 9), a=i64(0, 2, 3),
                                                   st=i64(1, 3, 2))),
    ("slice-no-axes", "Slice", 10, [IMG], {}, dict(s=i64(0, 1), e=i64(2**31 - 1, 3))),
    ("pad-attrs", "Pad", 9, [IMG], dict(pads=[0, 0, 1, 2, 0, 0, 0, 1], value=0.5), {}),
    ("pad-inputs-reflect", "Pad", 13, [IMG], dict(mode="reflect"), dict(p=i64(0, 0, 2, 1, 0, 0, 1, 2))),
    ("pad-axes", "Pad", 18, [IMG], dict(mode="edge"), dict(p=i64(1, 2, 3, 0), v=None, a=i64(2, 3))),
    ("add-constant", "Add", 13, [IMG], {}, dict(c=f32(4, 1, 1))),
    ("sub-constant", "Sub", 7, [IMG], {}, dict(c=f32(1, 4, 1, 1))),
    ("sub-runtime", "Sub", 14, [IMG, IMG], {}, {}),
    ("mul-runtime-broadcast", "Mul", 13, [IMG, (4, 1, 1)], {}, {}),
    ("div-constant", "Div", 13, [IMG], {}, dict(c=np.float32(4.0))),
    ("div-runtime", "Div", 13, [IMG, (4, 1, 1)], {}, {}),
    ("hard-sigmoid", "HardSigmoid", 7, [IMG], dict(alpha=0.3, beta=0.4), {}),
    ("hard-swish", "HardSwish", 14, [IMG], {}, {}),
    ("swish", "Swish", 24, [IMG], {}, {}),
    ("gelu", "Gelu", 20, [IMG], {}, {}),
    ("gelu-tanh", "Gelu", 20, [IMG], dict(approximate="tanh"), {}),
    ("mish", "Mish", 18, [IMG], {}, {}),
    ("selu", "Selu", 7, [IMG], dict(alpha=1.5, gamma=1.1), {}),
    ("softplus", "Softplus", 7, [IMG], {}, {}),
    ("softsign", "Softsign", 7, [IMG], {}, {}),
    ("prelu-per-channel", "PRelu", 16, [IMG], {}, dict(s=f32(4, 1, 1))),
    ("prelu-one-slope", "PRelu", 9, [IMG], {}, dict(s=f32(1))),
    ("prelu-2d", "PRelu", 13, [(6,)], {}, dict(s=f32(1, 6))),
    ("reduce-mean", "ReduceMean", 13, [IMG], dict(axes=[2, 3]), {}),
    ("reduce-sum", "ReduceSum", 13, [IMG], dict(keepdims=0), dict(a=i64(1))),
    ("reduce-max", "ReduceMax", 18, [IMG], {}, dict(a=i64(-1))),
    ("reduce-min", "ReduceMin", 11, [IMG], dict(axes=[1, 2]), {}),
    ("layer-norm", "LayerNormalization", 17, [IMG], dict(axis=2), dict(w=f32(7, 9), b=f32(7, 9))),
    ("group-norm", "GroupNormalization", 21, [IMG], dict(num_groups=2), dict(w=f32(4), b=f32(4))),
    ("instance-norm", "InstanceNormalization", 13, [IMG], {}, dict(w=f32(4), b=f32(4))),
    ("tile", "Tile", 13, [IMG], {}, dict(r=i64(1, 2, 1, 3))),
    ("expand", "Expand", 13, [(4, 1, 9)], {}, dict(s=i64(1, 1, 7, 1))),
    ("exp", "Exp", 13, [IMG], {}, {}),
    ("log", "Log", 13, [IMG], {}, {}),
    ("neg", "Neg", 13, [IMG], {}, {}),
    ("abs", "Abs", 13, [IMG], {}, {}),
    ("sqrt", "Sqrt", 13, [IMG], {}, {}),
    ("reciprocal", "Reciprocal", 13, [IMG], {}, {}),
    ("erf", "Erf", 13, [IMG], {}, {}),
    ("pow-constant-exponent", "Pow", 15, [IMG], {}, dict(e=np.float32(2.0))),
    ("max-variadic", "Max", 13, [IMG, (4, 1, 9), (1, 7, 1)], {}, {}),
    ("min", "Min", 8, [IMG, IMG], {}, {}),
    ("sum", "Sum", 8, [IMG, (4, 1, 9), IMG], {}, {}),
    ("dropout-7", "Dropout", 7, [IMG], dict(ratio=0.2), {}),
    ("dropout-13", "Dropout", 13, [IMG], {}, dict(r=np.float32(0.2))),
    ("identity", "Identity", 13, [IMG], {}, {}),
    ("cast-float", "Cast", 13, [IMG], dict(to=TensorProto.FLOAT), {}),
    ("gather-index", "Gather", 13, [IMG], dict(axis=1), dict(i=np.int64(-2))),
    ("gather-strided", "Gather", 11, [IMG], dict(axis=3), dict(i=i64(1, 4, 7))),
    ("split-11", "Split", 11, [IMG], dict(axis=1, split=[1, 3]), {}),
    ("split-13", "Split", 13, [IMG], dict(axis=-1), dict(s=i64(2, 7))),
    ("split-18-even", "Split", 18, [(4, 6, 9)], dict(axis=2, num_outputs=3), {}),
    ("resize-10-nearest", "Resize", 10, [IMG], dict(mode="nearest"), dict(s=np.array([1, 1, 2, 3], np.float32))),
    ("resize-nearest-floor", "Resize", 11, [IMG], dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                                                       nearest_mode="floor"),
     dict(roi=np.array([], np.float32), s=np.array([1, 1, 1.5, 0.5], np.float32))),
    ("resize-nearest-half-pixel-x2", "Resize", 13, [IMG], {}, dict(roi=None, s=np.array([1, 1, 2, 2], np.float32))),
    ("resize-linear-align", "Resize", 17, [IMG], dict(mode="linear", coordinate_transformation_mode="align_corners"),
     dict(roi=None, s=np.array([1, 1, 2, 1.5], np.float32))),
    ("resize-18-axes", "Resize", 18, [IMG], dict(mode="linear", axes=[2, 3]), dict(roi=None, s=None, z=i64(14, 4))),
    ("upsample-7", "Upsample", 7, [IMG], dict(scales=[1.0, 1.0, 2.0, 3.0]), {}),
    ("upsample-9", "Upsample", 9, [IMG], dict(mode="nearest"), dict(s=np.array([1, 1, 3, 2], np.float32))),
    # detection: regions of image 0 (any batch has one), boxes and scores of every image
    ("max-roi-pool", "MaxRoiPool", 13, [IMG], dict(pooled_shape=[2, 3], spatial_scale=0.5),
     dict(rois=np.array([[0, 1, 2, 9, 12], [0, 0, 0, 17, 13]], np.float32))),
    ("roi-align", "RoiAlign", 16, [IMG], dict(output_height=2, output_width=3, sampling_ratio=2, mode="max"),
     dict(rois=np.array([[1, 2, 6.5, 5], [0, 0.5, 8, 6]], np.float32), index=i64(0, 0))),
    ("gather-nd", "GatherND", 13, [(4, 5)], {}, dict(idx=i64(0, 3, 0, 1).reshape(2, 2))),
]


@pytest.mark.parametrize("op,opset,shapes,attrs,inits", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_import_matches_onnxruntime(op, opset, shapes, attrs, inits):
    outputs = len(attrs.get("split", [])) or attrs.get("num_outputs") or (2 if op == "Split" else 1)
    assert_import_matches(node_model(op, shapes, attrs, inits, opset, outputs))


def test_every_importable_op_has_a_case():
    from cnngraph.frontends.onnx_import import supported_ops

    folded_only = {"Shape", "Size", "Constant", "ConstantOfShape"}  # tested below
    int_output = {"NonMaxSuppression"}  # int64 out: tests/test_ops_detection.py imports it next to onnxruntime
    # boolean out, int64 indices out, indices that must match the batch: tests/test_ops_compare.py and
    # tests/test_ops_top_k.py import them next to onnx.reference
    int_output |= {"GreaterOrEqual", "TopK", "GatherElements"}
    pattern_only = {"Einsum"}  # read only after its Conv, as LocallyConnected2d: tests/test_ops_locally_connected.py
    assert set(supported_ops()) - folded_only - int_output - pattern_only <= {c[1] for c in CASES}


def test_constant_subgraphs_fold_into_plain_shapes_and_parameters():
    """x.view(x.size(0), -1) as PyTorch writes it, a ConstantOfShape weight, a Constant node."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"]),
        helper.make_node("ConstantOfShape", ["wshape"], ["w"], value=helper.make_tensor("v", FLOAT, [1], [0.1])),
        helper.make_node("Constant", [], ["bias"], value=helper.make_tensor("b", FLOAT, [5], [1, 2, 3, 4, 5])),
        helper.make_node("Gemm", ["flat", "w", "bias"], ["y"]),
    ]
    inits = dict(zero=np.int64(0), axes=i64(0), minus_one=i64(-1), wshape=i64(252, 5))
    graph = assert_import_matches(model_of(nodes, {"x": IMG}, ["y"], 13, inits))
    assert [n.op for n in graph.nodes] == ["Flatten", "Linear"]
    assert graph.node("y").attrs == dict(out_features=5, bias=True, weight_init="torch")


def test_gemm_with_a_runtime_bias_adds_it():
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=1)]
    graph = assert_import_matches(model_of(nodes, {"x": (12,), "c": (5,)}, ["y"], 13, dict(w=f32(5, 12))))
    assert [n.op for n in graph.nodes] == ["Linear", "Add"]


def test_resize_to_sizes_computed_from_the_input_shape():
    """F.interpolate(x, size=...) before opset 18: sizes = Concat(Shape(x)[:2], (h, w)); Size folds too."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "two"], ["nc"]),
        helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["r"], mode="linear",
                         coordinate_transformation_mode="pytorch_half_pixel"),
        helper.make_node("Size", ["x"], ["count"]),
        helper.make_node("Cast", ["count"], ["countf"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["r", "countf"], ["y"]),
    ]
    inits = dict(zero=i64(0), two=i64(2), hw=i64(11, 5))
    with pytest.raises(OnnxImportError, match=r"node 'y' \(Div\): input 1 \('countf'\) depends on the batch size"):
        from_model(model_of(nodes, {"x": IMG}, ["y"], 13, inits))
    graph = assert_import_matches(model_of(nodes[:4], {"x": IMG}, ["r"], 13, inits))
    assert graph.node("r").attrs["size"] == (11, 5)


def test_runtime_subtraction_of_a_constant_becomes_add_of_a_named_constant():
    graph = from_model(node_model("Sub", [IMG], {}, dict(mean=f32(1, 4, 1, 1))))
    assert [(n.op, n.name) for n in graph.nodes] == [("Constant", "node/neg1"), ("Add", "y0")]
    assert graph.node("node/neg1").params == {"value": "node/neg1.value"}
