"""Data parallelism over real MPI processes (mpiexec, mpi4py; skipped without them).

Oracle: the same run in one process. Two ranks at batch B/2 each must give one process's run at
batch B (per-step losses, epoch metrics, final parameters) within float32 summation-order
tolerance; with synchronised BatchNorm too (running statistics included), while per-rank
BatchNorm (the default) differs. A rank that dies or hangs stops the job within the timeout with
one line naming it. A --workers run resumes bit for bit.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.dist_worker import result, train

pytest.importorskip("mpi4py", reason="the dist extra (mpi4py, mpich) is not installed")
from cnngraph.train.dist import launch  # noqa: E402

try:
    MPIEXEC = launch.find_mpiexec()
except Exception:  # noqa: BLE001
    MPIEXEC = None
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec")
ROOT = Path(__file__).resolve().parent.parent


def two_ranks(scenario, out, *extra, timeout=300):
    command = launch.command(MPIEXEC, 2, [sys.executable, "-m", "tests.dist_worker", scenario, str(out), *extra])
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def distributed(scenario, tmp_path, *extra):
    out = tmp_path / f"{scenario}.npz"
    run = two_ranks(scenario, out, *extra)
    assert run.returncode == 0, run.stderr[-2000:]
    return dict(np.load(out)), json.loads(Path(f"{out}.json").read_text())


def max_difference(a, b):
    assert set(a) == set(b)
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


# float32 summation order; float16 activations (with float32 master weights and loss scaling) round differently
TOLERANCE = {"lenet": 1e-5, "bn_sync": 1e-5, "lenet_half": 1e-3}


@pytest.mark.parametrize("scenario", list(TOLERANCE))
def test_two_workers_at_half_the_batch_train_as_one_process(scenario, tmp_path):
    """LeNet-5 (no BatchNorm; the last batch splits 11 + 10), in float32 and float16, and a BatchNorm net with
    --sync-bn: 16 steps."""
    arrays, doc = distributed(scenario, tmp_path)
    alone_arrays, alone = result(train(scenario, tmp_path / "alone"))
    print(f"{scenario}: max parameter difference after {len(alone['losses'])} steps, 1 vs 2 workers: "
          f"{max_difference(arrays, alone_arrays):.2e}; max loss difference "
          f"{np.max(np.abs(np.subtract(doc['losses'], alone['losses']))):.2e}")
    assert len(doc["losses"]) == len(alone["losses"]) == 16
    tolerance = TOLERANCE[scenario]
    np.testing.assert_allclose(doc["losses"], alone["losses"], rtol=tolerance)
    assert max_difference(arrays, alone_arrays) < tolerance  # running statistics included
    for got, want in zip(doc["history"], alone["history"]):
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=tolerance), k


def test_per_worker_batchnorm_statistics_differ_from_one_process(tmp_path):
    """The default, as PyTorch DDP: each rank normalises by its own shard's statistics."""
    arrays, doc = distributed("bn", tmp_path)
    alone_arrays, alone = result(train("bn", tmp_path / "alone"))
    assert max_difference(arrays, alone_arrays) > 1e-3
    assert doc["losses"][0] != pytest.approx(alone["losses"][0], rel=1e-4)


@pytest.mark.parametrize("fault", ["kill", "hang"])
def test_a_rank_that_dies_or_hangs_stops_the_job_with_one_line_naming_it(fault, tmp_path, monkeypatch):
    timeout = 10
    monkeypatch.setenv("CNNGRAPH_DIST_TIMEOUT", str(timeout))
    code = (f"import sys; from cnngraph.train.dist import launch; sys.exit(launch.run_workers(2, "
            f"[sys.executable, '-m', 'tests.dist_worker', 'lenet', r'{tmp_path / 'out.npz'}', '--fault', '{fault}']))")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    print(f"{fault}: exit {run.returncode} after {elapsed:.1f} s; stderr:\n{run.stderr}")
    assert run.returncode != 0
    ours = [line for line in run.stderr.splitlines() if "rank 1" in line]
    assert len(ours) == 1, run.stderr
    if fault == "kill":  # named by the launcher, which saw its process end
        assert ours[0].startswith("cnngraph train: error: rank 1 died (its process ended during the run)")
    else:  # named by rank 0, whose wait for it timed out
        assert ours[0].startswith(f"rank 0: rank 1 stopped before the step's loss and counts")
        assert f"did not arrive within {timeout} s" in ours[0]
    assert elapsed < timeout + 40  # start-up and a few steps, then at most the timeout


def test_a_checkpoint_written_before_a_rank_died_resumes_the_run_exactly(tmp_path):
    """Rank 1 dies in epoch 2 (loss call 14: 8 steps and 4 evaluation batches are calls 1-12); the epoch-1
    checkpoint resumes, with 2 workers, to the uninterrupted 2-worker run, bit for bit."""
    rundir = tmp_path / "run"
    code = (f"import sys; from cnngraph.train.dist import launch; sys.exit(launch.run_workers(2, "
            f"[sys.executable, '-m', 'tests.dist_worker', 'lenet', r'{tmp_path / 'x.npz'}', '--fault', 'kill', "
            f"'--at', '14', '--rundir', r'{rundir}']))")
    died = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert died.returncode != 0 and "rank 1 died" in died.stderr, died.stderr
    resumed_arrays, resumed = distributed("lenet", tmp_path, "--rundir", str(rundir), "--resume")
    straight_arrays, straight = distributed("lenet", tmp_path)
    assert resumed["history"] == straight["history"]
    assert resumed["losses"] == straight["losses"][8:]  # this process's steps: epoch 2
    assert all(np.array_equal(resumed_arrays[k], straight_arrays[k]) for k in straight_arrays)


def npz_blobs(path):
    from tests.dist_worker import blobs

    train_set, test_set = blobs(72, 0), blobs(24, 1)
    np.savez(path, x=train_set.x[:, 0], y=train_set.y, x_test=test_set.x[:, 0], y_test=test_set.y)


def cli(*args):
    """``cnngraph train``; the model file imports ``tests``, so the ranks (started with ``python -P``, which leaves
    the working directory off sys.path) get the checkout on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "cnngraph", "train", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    return run


def test_a_workers_run_resumes_bit_for_bit_with_the_same_workers(tmp_path):
    if shutil.which("cnngraph") is None and not (Path(sys.executable).parent / "cnngraph").exists():
        pytest.skip("the cnngraph command is not installed")
    data = tmp_path / "blobs.npz"
    npz_blobs(data)
    model = f"{ROOT / 'tests' / 'dist_worker.py'}:bn_net"
    common = ["--data", str(data), "--batch", "12", "--workers", "2", "--sync-bn", "--schedule", "constant"]  # extending
    # a cosine schedule re-plans it; a constant one makes "1 epoch, then resume to 2" the same run as 2 epochs
    cli(model, *common, "--epochs", "2", "--out", str(tmp_path / "straight"))
    cli(model, *common, "--epochs", "1", "--out", str(tmp_path / "resumed"))
    cli("--resume", str(tmp_path / "resumed"), "--epochs", "2", "--workers", "2")
    straight = (tmp_path / "straight" / "metrics.csv").read_text().splitlines()
    resumed = (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()
    columns = straight[0].split(",")
    keep = [i for i, c in enumerate(columns) if c not in ("images_per_s", "seconds")]
    assert [[r.split(",")[i] for i in keep] for r in straight] == [[r.split(",")[i] for i in keep] for r in resumed]
    import safetensors.numpy

    a = safetensors.numpy.load_file(str(tmp_path / "straight" / "checkpoint.safetensors"))
    b = safetensors.numpy.load_file(str(tmp_path / "resumed" / "checkpoint.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    wrong = subprocess.run([sys.executable, "-m", "cnngraph", "train", "--resume", str(tmp_path / "resumed"),
                            "--epochs", "3"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 1 and "saved with 2 workers and resumes with 1" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
