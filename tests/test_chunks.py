"""Chunks of images or channels on worker threads (backends/chunks.py): in order, on one BLAS thread each, and
the same numbers bit for bit whatever the number of workers (the oracle: the same kernel run in turn)."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from cnngraph.backends import chunks, strict
from cnngraph.backends.kernels import conv, fused, linear, norm, pool, tiled_conv, winograd
from cnngraph.backends.threads import blas


@pytest.fixture
def workers(monkeypatch):
    """``blas.choose`` fixed at the given count (so that small test arrays go to the workers), and two cores,
    whatever the machine's cores and load."""
    monkeypatch.setattr(chunks, "CORES", 2)

    def use(count):
        monkeypatch.setattr(blas, "choose", lambda macs: count)
    yield use
    blas.restore()


def test_chunks_run_on_two_threads_at_once_in_order_with_one_blas_thread_each(workers, monkeypatch):
    """The first two chunks wait for each other: they can only both finish on two threads at once (this
    one and a pool thread)."""
    workers(2)
    both = threading.Barrier(2, timeout=10)
    set_to = []
    monkeypatch.setattr(blas, "use", set_to.append)

    def work(part):
        if part.start < 6:
            both.wait()
        return part.start, part.stop, threading.current_thread().name

    monkeypatch.setattr(type(blas), "current", property(lambda self: 2))  # as the executor set it
    done = chunks.over_chunks(np, work, 10, 3, 10**9)
    assert [(start, stop) for start, stop, _ in done] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert {name.startswith("cnngraph-chunks") for _, _, name in done[:2]} == {True, False}
    assert set_to == [1, 2]  # one BLAS thread while the chunks ran, then back to the executor's 2


def test_one_worker_or_a_device_namespace_runs_the_chunks_in_turn(workers, monkeypatch):
    set_to = []
    monkeypatch.setattr(blas, "use", set_to.append)
    here = threading.current_thread().name
    names = []

    def work(images):
        names.append(threading.current_thread().name)
        return images.stop - images.start

    workers(1)
    assert chunks.over_chunks(np, work, 5, 2, 10**9, 10**8) == [2, 2, 1]
    assert chunks.over_chunks(np, work, 5, 2, 10**9) == [2, 2, 1]  # threads left as the executor set them
    workers(2)
    device = object()  # CuPy's namespace, say: its work goes to a device queue from one thread
    assert chunks.over_chunks(device, work, 5, 2, 10**12, 10**8) == [2, 2, 1]
    assert set(names) == {here} and set_to == [1, 2]
    assert strict.namespace in chunks.HOST_NAMESPACES


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_pools_of_its_own(workers):
    """The parent's pool threads do not exist in a forked child; it must start its own, not wait on them."""
    workers(2)
    share = lambda: chunks.over_chunks(np, lambda part: part.start, 4, 1, 10**9)  # noqa: E731
    assert share() == [0, 1, 2, 3]  # the parent's pool exists now
    child = os.fork()
    if child == 0:
        try:
            os._exit(0 if share() == [0, 1, 2, 3] else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    pytest.fail("the forked child waited on its parent's pool threads")


def test_every_core_gets_a_chunk(workers):
    workers(1)
    assert chunks.over_chunks(np, lambda part: (part.start, part.stop), 5, 10, 10**9) == [(0, 3), (3, 5)]
    assert chunks.over_chunks(np, lambda part: (part.start, part.stop), 1, 10, 10**9) == [(0, 1)]


def _every_conv_kernel():
    """Winograd forward and weight gradient, and the im2col convolution, transposed convolution and weight
    gradient, on a batch of 6 in one-image chunks."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8, 10, 10)).astype(np.float32)
    weight = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    grad = rng.standard_normal((6, 8, 10, 10)).astype(np.float32)
    plan = winograd.Plan(x.shape, (1, 1, 1, 1))
    attrs = {"groups": 1, "kernel_size": (3, 3), "stride": (1, 1), "dilation": (1, 1), "padding": (1, 1, 1, 1)}
    return [winograd.winograd_conv2d(np, x, plan.filters(np, weight), None, plan),
            winograd.winograd_weight_grad(np, x, grad, plan),
            conv.conv2d_forward(np, x, weight, None, (2, 2), (1, 1, 1, 1), (1, 1), 1),
            conv.conv_transpose2d_forward(np, x, weight, None, (2, 2), (1, 1, 1, 1), (1, 1), 1, (19, 19)),
            conv.weight_grad(np, grad, x, attrs)]


def _max_pooling():
    """Max pooling in inference, and in training with its argmax and gradient, on a batch of 5 with ties."""
    x = np.round(np.random.default_rng(1).standard_normal((5, 3, 9, 9)), 1).astype(np.float32)
    attrs = {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1, 1, 1), "dilation": (1, 1),
             "ceil_mode": False}
    inference = pool.max_pool2d(np, [x], {}, attrs, SimpleNamespace(stash=None))
    ctx = SimpleNamespace(stash={})
    training = pool.max_pool2d(np, [x], {}, attrs, ctx)
    saved = SimpleNamespace(shapes=[x.shape], stash=ctx.stash)
    grad = np.random.default_rng(2).standard_normal(training.shape).astype(np.float32)
    return [inference, training, ctx.stash["argmax"], pool.max_pool2d_backward(np, grad, saved, {}, attrs)[0][0]]


def _batch_norm():
    """BatchNorm in training, forward (with its statistics) and backward, on 5 channels."""
    rng = np.random.default_rng(3)
    x, grad = rng.standard_normal((2, 5, 6, 6)).astype(np.float32), rng.standard_normal((2, 5, 6, 6)).astype(np.float32)
    params = {"weight": rng.standard_normal(5).astype(np.float32), "bias": rng.standard_normal(5).astype(np.float32),
              "running_mean": np.zeros(5, np.float32), "running_var": np.ones(5, np.float32)}
    attrs = {"eps": 1e-5, "momentum": 0.1}
    ctx = SimpleNamespace(stash={}, training=True, sum_across=None)
    out = norm.batch_norm(np, [x], params, attrs, ctx)
    saved = SimpleNamespace(inputs=[x], stash=ctx.stash, need_inputs=(True,), training=True)
    dx, grads = norm.batch_norm_backward(np, grad, saved, params, attrs)
    return [out, ctx.stash["mean"], ctx.stash["inv_std"], dx[0], grads["weight"], grads["bias"]]


def _batch_of_one():
    """At batch 1, fewer images than cores, the kernels cut other things: Winograd tile rows, the im2col and
    banded (tiled) convolutions output rows (the im2col one input channels, their sums added, where the output
    channels outnumber the output positions: 8 on 2x2), the 1x1 and transposed convolutions output channels,
    max pooling channels, Linear output features."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)
    weight, bias = rng.standard_normal((8, 8, 3, 3)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    plan = winograd.Plan(x.shape, (1, 1, 1, 1))
    attrs = {"groups": 1, "kernel_size": (3, 3), "stride": (1, 1), "dilation": (1, 1), "padding": (1, 1, 1, 1),
             "activation": "ReLU", "activation_attrs": {}, "ceil_mode": False}
    features = {"weight": rng.standard_normal((10, x.size)).astype(np.float32), "bias": bias[:1].repeat(10)}
    return [winograd.winograd_conv2d(np, x, plan.filters(np, weight), bias, plan),
            conv.conv2d_forward(np, x, weight, bias, (1, 1), (1, 1, 1, 1), (1, 1), 1),
            conv.conv2d_forward(np, x, weight, bias, (2, 2), (1, 1, 1, 1), (1, 1), 1),
            conv.conv2d_forward(np, x[:, :, :2, :2], weight, bias, (1, 1), (1, 1, 1, 1), (1, 1), 1),
            conv.conv2d_forward(np, x, weight[:, :, :1, :1], bias, (1, 1), (0, 0, 0, 0), (1, 1), 1),
            conv.conv_transpose2d_forward(np, x, weight, bias, (2, 2), (1, 1, 1, 1), (1, 1), 1, (23, 23)),
            tiled_conv.tiled_conv2d(np, x, weight, bias, attrs, tiled_conv.Plan(x.shape, attrs, 4)),
            pool.max_pool2d(np, [x], {}, dict(attrs, stride=(2, 2)), SimpleNamespace(stash=None)),
            linear.linear(np, [x.reshape(1, -1)], features, {}, None)]


def test_batch_of_one_cut_for_the_cores_agrees_with_the_whole_kernels(monkeypatch):
    """The oracle: each kernel run whole (one core), to float32 rounding (the GEMMs are of other widths)."""
    monkeypatch.setattr(tiled_conv, "BAND_BYTES", 1)  # a band per output row
    monkeypatch.setattr(chunks, "CORES", 1)
    whole = _batch_of_one()
    monkeypatch.setattr(chunks, "CORES", 2)
    for got, want in zip(_batch_of_one(), whole, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])  # cut for the cores (rows, tile rows, channels), and in images
@pytest.mark.parametrize("size,kernel,stride", [(12, 3, 1), (2, 3, 1), (12, 3, 2), (6, 1, 1)])
def test_each_chunk_is_finished_with_its_own_part_of_the_residual(batch, size, kernel, stride, monkeypatch):
    """The oracle: the plain convolution, then the residual add and ReLU over the whole output."""
    monkeypatch.setattr(chunks, "CORES", 2)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((batch, 8, size, size)).astype(np.float32)
    weight = rng.standard_normal((8, 8, kernel, kernel)).astype(np.float32)
    pads = (kernel // 2,) * 4
    plain = conv.conv2d_forward(np, x, weight, None, (stride,) * 2, pads, (1, 1), 1)
    residual = rng.standard_normal(plain.shape).astype(np.float32)
    attrs = {"residual": True, "activation": "ReLU", "activation_attrs": {}}
    finish = fused.per_chunk(np, [x, residual], attrs)
    got = [conv.conv2d_forward(np, x, weight, None, (stride,) * 2, pads, (1, 1), 1, finish=finish)]
    if kernel == 3 and stride == 1:
        plan = winograd.Plan(x.shape, pads)
        got.append(winograd.winograd_conv2d(np, x, plan.filters(np, weight), None, plan, finish=finish))
    for result in got:
        np.testing.assert_allclose(result, np.maximum(plain + residual, 0), rtol=1e-5, atol=1e-4)


def test_a_device_namespace_is_never_cut_for_the_cores(monkeypatch):
    monkeypatch.setattr(chunks, "CORES", 16)
    assert chunks.too_few_images(np, 8) and chunks.too_few_images(strict.namespace, 1)
    assert not chunks.too_few_images(np, 16) and not chunks.too_few_images(object(), 1)


@pytest.mark.parametrize("kernels", [_every_conv_kernel, _max_pooling, _batch_norm, _batch_of_one])
def test_kernels_give_the_same_bits_on_two_workers_as_in_turn(kernels, workers, monkeypatch):
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)
    monkeypatch.setattr(chunks, "PASS_CHUNK_BYTES", 1)
    monkeypatch.setattr(tiled_conv, "BAND_BYTES", 1)
    workers(1)
    in_turn = kernels()
    workers(2)
    for got, want in zip(kernels(), in_turn):
        np.testing.assert_array_equal(got, want)
