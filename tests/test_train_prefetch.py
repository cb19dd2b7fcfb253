"""Prefetch: the Loader's batches from a background thread, staged to the device, resumable at the batch
last handed out however far the thread ran ahead; errors in the thread reach the consumer; no thread outlives
its with block."""

import threading
import time

import numpy as np
import pytest

from cnngraph.backends.devices import get_backend
from cnngraph.backends.strict import StrictArray
from cnngraph.errors import TrainingError
from cnngraph.train.data import Dataset
from cnngraph.train.data.loader import Loader
from cnngraph.train.data.prefetch import Prefetch
from cnngraph.train.data.transforms import Augment

STRICT = get_backend("strict")
BATCHES = 7


def loader(seed=3):
    rng = np.random.default_rng(0)
    data = Dataset(rng.uniform(0, 1, (BATCHES * 4, 1, 6, 6)).astype(np.float32), np.arange(BATCHES * 4) % 5)
    return Loader(data, 4, np.random.default_rng(seed), augment=Augment(crop=2, flip=True))  # draws per batch


def host(batch):
    return tuple(STRICT.to_host(a) for a in batch)


def same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "cnngraph-prefetch"]


def wait_until(condition, timeout=5.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_hands_out_the_loaders_batches_as_device_arrays(depth):
    expected = [tuple(a.copy() for a in batch) for batch in loader()]
    with Prefetch(loader(), STRICT, np.float32, depth) as batches:
        got = list(batches)
    assert all(isinstance(a, StrictArray) for batch in got for a in batch)
    assert len(got) == BATCHES and all(same(host(g), e) for g, e in zip(got, expected))
    assert got[0][0].dtype == np.float32 and got[0][1].dtype == np.int64
    assert not prefetch_threads()


@pytest.mark.parametrize("depth", [0, 2])
def test_closing_early_rewinds_the_loader_to_the_last_batch_handed_out(depth):
    straight = [tuple(a.copy() for a in batch) for batch in loader()]
    source = loader()
    with Prefetch(source, STRICT, np.float32, depth) as batches:
        for i, batch in enumerate(batches):
            assert same(host(batch), straight[i])
            if i == 2:
                break
        if depth:
            wait_until(lambda: source.position == 3 + depth + 1)  # the thread ran ahead, drawing augmentations
        assert batches.position == 3
    assert source.position == 3 and not prefetch_threads()
    again = loader(seed=99)  # a fresh loader given the saved state replays the rest exactly
    again.load_state(*source.state())
    assert all(same(b, e) for b, e in zip(list(again), straight[3:], strict=True))


def test_an_error_in_the_thread_is_raised_in_the_consumer():
    class Broken(Augment):
        calls = 0

        def __call__(self, x, rng):
            self.calls += 1
            if self.calls == 3:
                raise ValueError("augmentation failed on batch 3")
            return super().__call__(x, rng)

    source = loader()
    source.augment = Broken(crop=1)
    seen = 0
    with pytest.raises(ValueError, match="augmentation failed on batch 3"):
        with Prefetch(source, STRICT, np.float32, depth=2) as batches:
            for _ in batches:
                seen += 1
    assert seen == 2 and not prefetch_threads()


def test_an_error_in_the_consumer_stops_the_thread():
    source = loader()
    with pytest.raises(KeyboardInterrupt):
        with Prefetch(source, STRICT, np.float32, depth=1) as batches:
            for _ in batches:
                wait_until(lambda: source.position == 3)  # batch 2 queued, batch 3 waiting for room
                raise KeyboardInterrupt  # a second Ctrl-C
    assert not prefetch_threads()


def test_batches_only_inside_the_with_block():
    with pytest.raises(TrainingError, match="inside its with block only"):
        next(iter(Prefetch(loader(), STRICT)))
    with pytest.raises(TrainingError, match="prefetch depth must be >= 0"):
        Prefetch(loader(), STRICT, depth=-1)
