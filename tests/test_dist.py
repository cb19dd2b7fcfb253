"""Data parallelism in one process: shards, the sharded loader, bucketed gradient sums started during
backward (with an in-process communicator), the NCCL communicator on stand-ins for CuPy and NCCL,
and a single-process run that never loads MPI. The runs over mpiexec are in test_dist_mpi.py."""

import subprocess
import sys

import numpy as np
import pytest

import cnngraph
from cnngraph.errors import DistributedError, TrainingError
from cnngraph.train import CrossEntropy
from cnngraph.train.data.loader import Loader
from cnngraph.train.data.transforms import Augment
from cnngraph.train.dist.buckets import BucketedAllReduce
from cnngraph.train.dist.communicator import Communicator, Pending
from cnngraph.train.dist.nccl import NcclCommunicator
from cnngraph.train.dist.sharding import check_batches, shard
from tests.dist_worker import bn_net
from tests.test_train_loop import blobs


@pytest.mark.parametrize("count, size", [(32, 2), (21, 2), (10, 3), (7, 7)])
def test_shards_split_a_batch_in_order_into_nearly_equal_parts(count, size):
    parts = [np.arange(count)[shard(count, rank, size)] for rank in range(size)]
    assert np.array_equal(np.concatenate(parts), np.arange(count))
    assert {len(p) for p in parts} <= {count // size, -(-count // size)}


def test_a_batch_that_leaves_a_worker_without_samples_is_refused():
    check_batches("training set", 21, 10, 1)
    with pytest.raises(TrainingError, match="end with a batch of 1, fewer than the 2 workers"):
        check_batches("training set", 21, 10, 2)


def test_ranks_draw_together_the_batches_one_loader_draws():
    """Same seed, same order and augmentation draws: the ranks' shards concatenate to the single loader's batch."""
    data = blobs(45, 0)

    def loader(shard_=None):
        return Loader(data, 8, np.random.default_rng(3), augment=Augment(crop=1, flip=True), shard=shard_)

    ranks = [list(loader((r, 3))) for r in range(3)]
    for step, (x, y) in enumerate(loader()):
        assert np.array_equal(np.concatenate([r[step][0] for r in ranks]), x)
        assert np.array_equal(np.concatenate([r[step][1] for r in ranks]), y)


class _Done(Pending):
    def wait(self):
        pass

    def test(self):
        return True


class TwoIdenticalRanks(Communicator):
    """In-process stand-in for two ranks holding the same gradients: a sum doubles the buffer. Records when each
    sum started, counted in nodes whose backward had run."""

    rank, size = 0, 2

    def __init__(self):
        self.started, self.nodes_done = [], 0

    def start_sum(self, buffer, what):
        buffer *= 2
        self.started.append((what, self.nodes_done))
        return _Done()

    def broadcast(self, buffer, what, root=0):
        return buffer


def test_buckets_start_during_backward_and_sum_every_gradient():
    graph = bn_net()
    x, y = blobs(12, 0).x, blobs(12, 0).y
    out = graph.outputs[0]
    alone = cnngraph.compile(graph, train=True)
    expected = alone.backward({out: CrossEntropy()(alone.forward(x)[out], y)[1]})

    model = cnngraph.compile(graph, train=True)
    comm = TwoIdenticalRanks()
    sync = model.gradient_sync = BucketedAllReduce(comm, model, cap_bytes=600)  # fc's weight alone is 2 KiB
    done = sync.node_done

    def counting(node, grads):
        done(node, grads)
        comm.nodes_done += 1

    sync.node_done = counting
    got = model.backward({out: CrossEntropy()(model.forward(x)[out], y)[1]})
    assert len(sync.buckets) >= 3
    assert [n for _, n in comm.started] == sorted(n for _, n in comm.started)
    assert comm.started[0][1] < comm.started[-1][1], "the first bucket must go out before backward ends"
    assert set(got) == set(expected)
    for key, grad in expected.items():
        np.testing.assert_array_equal(got[key], 2 * grad)


# -- NCCL on stand-ins: the calls it makes, in order ---------------------------------------------------------


class FakeDeviceArray:
    def __init__(self, values):
        self.values = np.asarray(values)
        self.dtype, self.size = self.values.dtype, self.values.size
        self.data = type("Memory", (), {"ptr": 4096})()


class FakeStream:
    ptr = 77

    def __init__(self, log, done=True):
        self.log, self.done = log, done

    def record(self):
        self.log.append("record")
        return type("Event", (), {"done": self.done})()

    def wait_event(self, event):
        self.log.append("stream waits for compute")


class FakeCupy:
    def __init__(self, log, done=True):
        cuda = type("cuda", (), {})()
        cuda.Device = lambda index: type("Device", (), {"use": lambda self: log.append(f"device {index}")})()
        cuda.runtime = type("runtime", (), {"getDeviceCount": staticmethod(lambda: 8)})()
        cuda.Stream = lambda non_blocking: FakeStream(log, done)
        cuda.get_current_stream = lambda: FakeStream(log)
        self.cuda = cuda


class FakeNccl:
    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 6, 7, 8, 0

    def __init__(self, log):
        self.log = log

    def get_unique_id(self):
        return tuple(range(-64, 64))

    def NcclCommunicator(self, ndev, uid, rank):  # noqa: N802 - CuPy's name
        log = self.log
        log.append(("init", ndev, uid[:3], rank))

        class Comm:
            def allReduce(self, send, recv, count, dtype, op, stream):  # noqa: N802
                log.append(("allReduce", send, recv, count, dtype, op, stream))

            def bcast(self, buf, count, dtype, root, stream):
                log.append(("bcast", buf, count, dtype, root, stream))

            def abort(self):
                log.append("abort")

        return Comm()


class FakeWatch:
    def __init__(self, log, timeout=False):
        self.log, self.entered, self.timeout = log, 0, timeout

    def enter(self):
        self.entered += 1
        return self.entered

    def wait(self, done, what, number):
        if self.timeout and not done():
            raise DistributedError(f"rank 1 stopped before {what}")


class FakeHost:
    """Rank 1 of 2: the broadcast delivers rank 0's NCCL id."""

    rank, size = 1, 2

    def __init__(self, log, timeout=False):
        self.log, self.watch = log, FakeWatch(log, timeout)

    def broadcast(self, buffer, what, root=0):
        self.log.append(("host broadcast", what))
        buffer[:] = range(-64, 64)
        return buffer


def test_nccl_shares_its_id_over_mpi_and_sums_in_place_on_its_own_stream(monkeypatch):
    monkeypatch.setenv("MPI_LOCALRANKID", "9")
    log = []
    comm = NcclCommunicator(FakeHost(log), FakeCupy(log), FakeNccl(log))
    assert log[:3] == ["device 1", ("host broadcast", "the NCCL unique id"), ("init", 2, (-64, -63, -62), 1)]
    buffer = FakeDeviceArray(np.ones(5, dtype=np.float32))
    comm.start_sum(buffer, "bucket 0").wait()
    assert log[3:] == ["record", "stream waits for compute", ("allReduce", 4096, 4096, 5, 7, 0, 77), "record"]
    with pytest.raises(DistributedError, match="float16, float32 and float64"):
        comm.start_sum(FakeDeviceArray(np.ones(2, dtype=np.int32)), "bucket 0")


def test_nccl_aborts_its_communicator_when_a_rank_does_not_arrive():
    log = []
    comm = NcclCommunicator(FakeHost(log, timeout=True), FakeCupy(log, done=False), FakeNccl(log))
    with pytest.raises(DistributedError, match="rank 1 stopped before bucket 3"):
        comm.start_sum(FakeDeviceArray(np.ones(2, dtype=np.float64)), "bucket 3").wait()
    assert log[-1] == "abort"


def test_a_single_process_run_never_imports_mpi(tmp_path):
    code = ("import sys; from cnngraph.train import Trainer, TrainConfig, Splits; from tests.dist_worker import "
            f"bn_net, blobs; Trainer(bn_net(), Splits(blobs(24, 0), blobs(12, 1), 'b'), TrainConfig(epochs=1, "
            f"batch=12), r'{tmp_path}').fit(); assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_launcher_names_the_rank_whose_process_ended_without_saying_bye(tmp_path, monkeypatch):
    """The watch without MPI: rank 0 ends well, rank 1 is killed; the launcher names rank 1, not rank 0."""
    from cnngraph.train.dist.watch import WATCH_ENV, Watch

    path = str(tmp_path / "watch.sock")
    watch = Watch(path)
    monkeypatch.setenv(WATCH_ENV, path)
    code = ("import os, signal, sys; from cnngraph.train.dist.watch import RankLink; link = RankLink(int(sys.argv[1]));"
            " link.say('bye') if sys.argv[1] == '0' else os.kill(os.getpid(), signal.SIGKILL)")
    ranks = [subprocess.Popen([sys.executable, "-c", code, str(r)]) for r in (0, 1)]
    for rank in ranks:
        rank.wait(timeout=60)
    for _ in range(200):  # each poll takes in what arrived (connections, words, ends)
        if watch.poll(0.05) is not None:
            break
    watch.close()
    assert watch.first == ("died", 1)
