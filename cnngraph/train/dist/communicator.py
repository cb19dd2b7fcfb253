"""What data parallelism needs from a communication engine, and the MPI engine (``mpi4py``).

A ``Communicator`` sums arrays over the ranks in place (``start_sum`` returns at once, so a bucket
of gradients travels while backward computes the next; ``sum`` waits) and broadcasts from a root.

The fault watch: MPI would wait forever for a rank that died or hangs. Every wait here polls with
a deadline (``timeout`` seconds, ``CNNGRAPH_DIST_TIMEOUT``, default 300) and, on entering each
collective, every rank sends every other a heartbeat numbering it. When a wait times out, or
mpiexec signals a process failure (``SIGUSR1`` under ``-disable-auto-cleanup``), the ranks whose
heartbeat for this collective never came are named in one ``DistributedError`` line. ``fail``
then writes that line where the launcher finds it and aborts the job, so no rank is left waiting.
A rank that dies is named by the launcher (``watch``): mpiexec may kill the others first.

MPI is not finalised at exit (``mpi4py.rc.finalize = False``): finalising waits for every rank,
which hangs when one has died; ``close`` finalises after a run that ended well.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np

from cnngraph.errors import DistributedError
from cnngraph.train.dist.watch import RankLink, report

DEFAULT_TIMEOUT_S = 300.0
_HEARTBEAT_TAG = 7001
_SPIN_POLLS = 200  # polls before a waiting rank starts sleeping between them (the cores are shared)


def default_timeout() -> float:
    text = os.environ.get("CNNGRAPH_DIST_TIMEOUT")
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DistributedError(f"CNNGRAPH_DIST_TIMEOUT must be a number of seconds > 0, got {text!r}")
    return value


class Pending(ABC):
    """A sum in flight."""

    @abstractmethod
    def wait(self) -> None:
        """Block until the result is in the buffer (raises DistributedError on a fault)."""

    @abstractmethod
    def test(self) -> bool:
        """Whether it finished; asking also moves the engine along (MPICH has no progress thread)."""


class Communicator(ABC):
    """Collectives over ``size`` ranks, this one being ``rank``; every rank calls them in the same order."""

    rank: int
    size: int

    @abstractmethod
    def start_sum(self, buffer: Any, what: str) -> Pending:
        """Begin summing ``buffer`` over the ranks, in place; ``what`` names it in a fault message."""

    def sum(self, buffer: Any, what: str) -> Any:
        self.start_sum(buffer, what).wait()
        return buffer

    @abstractmethod
    def broadcast(self, buffer: Any, what: str, root: int = 0) -> Any:
        """``root``'s ``buffer`` on every rank, in place."""

    def close(self) -> None:
        """After a run that ended well on every rank."""

    def fail(self, line: str) -> None:
        """Stop the whole job after an error on this rank (never returns)."""
        report(line)
        os._exit(1)


class FaultWatch:
    """Heartbeats per collective, polled while waiting; names the ranks that did not arrive."""

    def __init__(self, comm: Any, timeout: float):
        self.comm, self.timeout = comm, timeout
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.entered = 0  # collectives this rank has entered
        self.seen = {peer: 0 for peer in self._peers()}  # ... and each peer, as its heartbeats say
        self._inbox = {peer: self._listen(peer) for peer in self._peers()}
        self._outbox: list = []
        self.failure_signalled = False
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, self._on_failure)

    def _peers(self) -> list[int]:
        return [p for p in range(self.size) if p != self.rank]

    def _on_failure(self, signum, frame) -> None:
        self.failure_signalled = True

    def _listen(self, peer: int) -> tuple[np.ndarray, Any]:
        box = np.zeros(1, dtype=np.int64)
        return box, self.comm.Irecv(box, source=peer, tag=_HEARTBEAT_TAG)

    def enter(self) -> int:
        """Tell every peer this rank reached its next collective; its number."""
        self.entered += 1
        self._outbox = [(b, r) for b, r in self._outbox if not r.Test()]
        for peer in self._peers():
            beat = np.array([self.entered], dtype=np.int64)
            self._outbox.append((beat, self.comm.Isend(beat, dest=peer, tag=_HEARTBEAT_TAG)))
        return self.entered

    def close(self) -> None:
        """After the last collective (every rank entered as many): take in the heartbeats still travelling,
        stop listening, and ignore mpiexec's notices of ranks that exit from now on."""
        self.wait(self._all_arrived, "the end of the run", self.entered)
        for box, request in self._inbox.values():
            request.Cancel()
            request.Wait()
        for beat, request in self._outbox:
            request.Wait()
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)

    def _all_arrived(self) -> bool:
        self._poll()
        return all(n >= self.entered for n in self.seen.values())

    def _poll(self) -> None:
        for peer, (box, request) in list(self._inbox.items()):
            while request.Test():
                self.seen[peer] = int(box[0])
                box, request = self._inbox[peer] = self._listen(peer)

    def wait(self, done: Callable[[], bool], what: str, number: int) -> None:
        """Poll ``done`` until it holds; a DistributedError naming the missing ranks past the deadline or on a
        process failure mpiexec signalled."""
        deadline, polls = time.monotonic() + self.timeout, 0
        while not done():
            polls += 1
            if polls > _SPIN_POLLS:
                time.sleep(0.0005)
            if self.failure_signalled or time.monotonic() > deadline:
                self._poll()
                raise DistributedError(self._message(what, number))

    def _message(self, what: str, number: int) -> str:
        missing = [p for p, n in self.seen.items() if n < number]
        why = ("mpiexec reported a process failure" if self.failure_signalled
               else f"it did not arrive within {self.timeout:g} s")
        if missing:
            ranks = ("rank " if len(missing) == 1 else "ranks ") + ", ".join(str(p) for p in missing)
            return (f"{ranks} stopped before {what} (collective {number}): {why}; it died or hangs. "
                    f"Rank {self.rank} stops")
        return (f"{what} (collective {number}) did not complete: {why}, after every rank entered it "
                f"(a rank died or hangs inside it). Rank {self.rank} stops")


class _MpiPending(Pending):
    def __init__(self, watch: FaultWatch, request: Any, what: str, number: int):
        self.watch, self.request, self.what, self.number = watch, request, what, number

    def wait(self) -> None:
        self.watch.wait(self.request.Test, self.what, self.number)

    def test(self) -> bool:
        return self.request.Test()


class MpiCommunicator(Communicator):
    """MPI_COMM_WORLD (or ``comm``) through mpi4py, on NumPy arrays."""

    def __init__(self, comm: Any = None, timeout: float | None = None):
        try:
            import mpi4py
        except ImportError:
            raise DistributedError("data parallelism needs mpi4py and an MPI library: "
                                   "pip install -e \".[dist]\"") from None
        mpi4py.rc.finalize = False  # see the module's docstring
        from mpi4py import MPI

        self.mpi = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.watch = FaultWatch(self.comm, timeout if timeout is not None else default_timeout())
        self.link = RankLink(self.rank)

    def start_sum(self, buffer: np.ndarray, what: str) -> _MpiPending:
        number = self.watch.enter()
        request = self.comm.Iallreduce(self.mpi.IN_PLACE, _host(buffer, what), op=self.mpi.SUM)
        return _MpiPending(self.watch, request, what, number)

    def broadcast(self, buffer: np.ndarray, what: str, root: int = 0) -> np.ndarray:
        number = self.watch.enter()
        request = self.comm.Ibcast(_host(buffer, what), root=root)
        _MpiPending(self.watch, request, what, number).wait()
        return buffer

    def close(self) -> None:
        """Every rank's heartbeats received, the listening ended, MPI finalised."""
        number = self.watch.enter()
        _MpiPending(self.watch, self.comm.Ibarrier(), "the end of the run", number).wait()
        self.watch.close()
        self.mpi.Finalize()
        self.link.say("bye")

    def fail(self, line: str) -> None:
        """Under the launcher, which then stops the other ranks, exit; under a user's mpiexec, MPI_Abort."""
        report(line)
        if not self.link.say("failed"):
            self.comm.Abort(1)
        os._exit(1)  # MPI_Abort may return before mpiexec's kill arrives


def _host(buffer: Any, what: str) -> np.ndarray:
    if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous:
        raise DistributedError(f"{what}: MPI sums contiguous NumPy arrays, got {type(buffer).__name__} "
                               f"(on the cupy backend the gradients travel over NCCL)")
    return buffer
