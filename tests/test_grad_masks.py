"""Gradients that pass through a mask (ReLU, max pooling) against PyTorch autograd where the edge cases
decide: tied maxima (the first one wins), and NaN or infinite gradients where the mask is off (they
become 0, as torch's threshold_backward gives, not NaN as a multiply by the mask would)."""

import numpy as np
import pytest

import cnngraph
from cnngraph.frontends import dsl

torch = pytest.importorskip("torch")
F = torch.nn.functional


def gradients(layer, x, grad=None):
    """The output, the output gradient (``grad``, or standard normal values) and the input gradient of a
    one-layer model in float32."""
    x_in = dsl.input("x", x.shape[1:])
    graph = dsl.Model(x_in, layer(x_in))
    model = cnngraph.compile(graph, train=True)
    out = model.forward(x, input_grads=True)[graph.outputs[0]]
    if grad is None:
        grad = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
    model.backward({graph.outputs[0]: grad})
    return out, grad, model.input_grads["x"]


@pytest.mark.parametrize("shape,kernel,stride,padding,dilation,ceil", [
    ((2, 3, 9, 9), 3, 2, 1, 1, False),  # ResNet's stem pool
    ((2, 3, 8, 9), (3, 2), (2, 3), (1, 0), 1, True),
    ((1, 2, 11, 11), 3, 2, 1, 2, False),
    ((1, 2, 5, 6, 7), (2, 3, 3), (1, 2, 2), (1, 1, 0), 1, True),  # 3-D: phase planes over three axes
])
def test_max_pool_ties_route_to_the_first_maximum_as_torch(shape, kernel, stride, padding, dilation, ceil):
    x = np.random.default_rng(0).integers(0, 3, shape).astype(np.float32)  # three values: most windows tie
    pool, torch_pool = (dsl.max_pool3d, F.max_pool3d) if len(shape) == 5 else (dsl.max_pool2d, F.max_pool2d)
    out, grad, dx = gradients(lambda t: pool(t, kernel, stride=stride, padding=padding, dilation=dilation,
                                             ceil_mode=ceil), x)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch_pool(tx, kernel, stride, padding, dilation, ceil)
    ty.backward(torch.from_numpy(grad))
    np.testing.assert_array_equal(out, ty.detach().numpy())
    want = tx.grad.numpy()
    np.testing.assert_array_equal(dx != 0, want != 0)  # the same elements receive gradients
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-6)  # overlapping windows' sums may round apart


def test_max_pool_nan_is_the_maximum_and_its_first_position_gets_the_gradient():
    x = np.array([[[[1, np.nan, np.nan], [5, 2, 3], [0, 0, 0]]]], np.float32)
    out, _, dx = gradients(lambda t: dsl.max_pool2d(t, 3), x, np.full((1, 1, 1, 1), 7, np.float32))
    assert np.isnan(out).all()
    np.testing.assert_array_equal(dx, np.where(np.arange(9).reshape(1, 1, 3, 3) == 1, 7, 0))


def test_relu_gradient_is_zero_where_the_output_is_even_for_nan_and_inf():
    x = np.array([[-1.0, 0.0, 2.0, -3.0, 4.0, -0.5]], np.float32)
    grad = np.array([[np.nan, np.inf, 1.5, -np.inf, np.nan, 2.0]], np.float32)
    _, _, dx = gradients(dsl.relu, x, grad)
    want = torch.ops.aten.threshold_backward(torch.from_numpy(grad), torch.relu(torch.from_numpy(x)), 0)
    np.testing.assert_array_equal(dx, want.numpy())  # NaN only where the output is positive
    assert not np.signbit(dx[0, [0, 1, 3, 5]]).any()  # masked positions are +0.0
