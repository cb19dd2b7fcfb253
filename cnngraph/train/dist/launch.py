"""``cnngraph train --workers N``: the same command as N local processes under ``mpiexec``.

A process started by ``mpiexec`` (the launcher's, or one a user runs across machines with
``mpiexec -n N --hostfile H python -m cnngraph train ...``) is a rank: ``world_size`` reads that
from the environment MPICH's and Open MPI's launchers set, without importing MPI.

Faults: the launcher runs MPICH's ``mpiexec`` with ``-disable-auto-cleanup`` (so a rank that
hangs is found by the others' fault watch, which names it and aborts the job) and watches its
ranks itself (``watch``): when one dies it prints one line naming it and stops the job.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnngraph.errors import DistributedError
from cnngraph.train.dist.watch import REPORT_ENV, WATCH_ENV, Watch

SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")  # MPICH (Hydra), Open MPI
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")
GRACE_S = 2.0  # after a rank died: how long the others get to stop before mpiexec is told to end them


def world_size(variables: tuple[str, ...] = SIZE_VARIABLES) -> int:
    """How many ranks the launcher that started this process started (1: not started by mpiexec); with
    ``LOCAL_SIZE_VARIABLES``, how many of them on this machine."""
    for name in variables:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def cores_per_rank() -> int:
    """This machine's cores shared among its ranks: BLAS threads beyond that only contend."""
    return max(1, (os.cpu_count() or 1) // world_size(LOCAL_SIZE_VARIABLES))


def find_mpiexec() -> str:
    """The mpiexec beside this Python (the ``mpich`` wheel puts it in the environment's bin) or on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        raise DistributedError("--workers needs mpiexec: pip install -e \".[dist]\" (mpi4py and MPICH)")
    return found


def command(mpiexec: str, workers: int, program: list[str]) -> list[str]:
    """The mpiexec command line that runs ``program`` as ``workers`` ranks."""
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, check=False).stdout
    cleanup = ["-disable-auto-cleanup"] if "HYDRA" in version.upper() else []
    return [mpiexec, "-n", str(workers), *cleanup, *program]


def without_workers(argv: list[str]) -> list[str]:
    """``argv`` less its ``--workers N`` (the ranks are already N)."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--workers":
            skip = True
        elif not word.startswith("--workers="):
            out.append(word)
    return out


def run_workers(workers: int, program: list[str]) -> int:
    """Run ``program`` (``python -m cnngraph train ...``) as ``workers`` ranks; their exit status, after one line
    naming a rank that died, or the line of a rank that failed."""
    with tempfile.TemporaryDirectory(prefix="cnngraph-dist-") as folder:
        report, watch = Path(folder) / "report.txt", Watch(str(Path(folder) / "watch.sock"))
        env = {**os.environ, REPORT_ENV: str(report), WATCH_ENV: str(Path(folder) / "watch.sock")}
        process = subprocess.Popen(command(find_mpiexec(), workers, program), env=env)
        try:
            since = None
            while process.poll() is None:
                try:
                    if watch.poll(0.05) is not None and since is None:
                        since = time.monotonic()
                    if since is not None and time.monotonic() - since > GRACE_S:
                        watch.stop()  # the ranks still running (a hung one too); then mpiexec ends
                        since = math.inf
                except KeyboardInterrupt:  # the ranks got it too: they save a checkpoint and stop together
                    continue
            watch.poll(0)
        finally:
            watch.close()
        if watch.first is not None and watch.first[0] == "died":
            print(f"cnngraph train: error: rank {watch.first[1]} died (its process ended during the run); "
                  f"the other ranks were stopped", file=sys.stderr)
            return process.returncode or 1
        lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
        if process.returncode != 0 and lines:  # the first rank's: the others, if any, say the same or follow it
            print(lines[0], file=sys.stderr)
        return process.returncode
