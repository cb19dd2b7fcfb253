"""A loader worker with a memory cap and a per-case time limit, for the fuzz suite.

Each case runs in a separate process whose address space is capped (RLIMIT_AS, 2 GiB by default),
so a file that makes a loader allocate without bound ends as a MemoryError there (or kills only the
worker), never the test run; a case that does not answer in time is a hang, and the worker is
replaced. The worker's size budget (CNNGRAPH_MAX_BYTES) is set below the cap, as a user sets it to
fit the memory they have. Outcomes: ``typed`` (a CnnGraphError), ``accepted``, ``memory``
(``memory: ...``: MemoryError, a typed error wrapping one, or the worker died), ``hang``, or
``untyped: <type>: <message>``.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import traceback
from pathlib import Path

CAP = 2 * 2**30
BUDGET = str(512 * 2**20)
TIMEOUT = 20.0  # seconds per case, start-up of a fresh worker excluded


class Worker:
    """One capped worker process at a time; ``run`` restarts it after a hang or a death."""

    def __init__(self, cap: int = CAP, budget: str = BUDGET, timeout: float = TIMEOUT):
        self.cap, self.budget, self.timeout = cap, budget, timeout
        self.process = self.conn = None

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, self.cap, self.budget), daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(120) or self.conn.recv() != "ready":
            raise RuntimeError("the fuzz worker did not start")

    def run(self, fmt: str, file_index: int, edits: list) -> str:
        if self.process is None or not self.process.is_alive():
            self._start()
        self.conn.send((fmt, file_index, edits))
        if not self.conn.poll(self.timeout):
            self.close()
            return "hang"
        try:
            return self.conn.recv()
        except EOFError:  # killed: the kernel's OOM killer, or a crash in native code
            self.close()
            return "memory: the worker died"

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.conn.close()
        self.process = self.conn = None


def serve(conn, cap: int, budget: str) -> None:
    """The worker's loop: cap memory, import, then answer cases until the pipe closes."""
    import resource

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # thread stacks and BLAS buffers count against the address-space cap
    os.environ["CNNGRAPH_MAX_BYTES"] = budget
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from cnngraph.errors import CnnGraphError
    from tests.fuzz_formats import FORMATS
    from tests.fuzz_mutations import apply

    seeds: dict[str, dict[str, bytes]] = {}
    conn.send("ready")
    while True:
        try:
            fmt, file_index, edits = conn.recv()
        except EOFError:
            return
        try:
            if fmt not in seeds:
                seeds[fmt] = FORMATS[fmt].files()
            files, mutated = apply(seeds[fmt], file_index, edits)
        except Exception as e:  # noqa: BLE001 - a bug of the suite itself, not of a loader
            conn.send(f"harness error: {type(e).__name__}: {e}")
            continue
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            for name, data in files.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)
            try:
                FORMATS[fmt].target(root, mutated)
                outcome = "accepted"
            except CnnGraphError as e:
                outcome = f"memory: {_where(e)}" if _ran_out(e) else "typed"
            except MemoryError as e:
                outcome = f"memory: {_where(e)}"
            except Exception as e:  # noqa: BLE001 - what the suite exists to find
                outcome = f"untyped: {_where(e)}"
        conn.send(outcome)


def _where(e: BaseException) -> str:
    """The exception and the line that raised it, for the table's notes."""
    frame = traceback.extract_tb(e.__traceback__)[-1]
    return f"{type(e).__name__}: {str(e)[:200]} ({Path(frame.filename).name}:{frame.lineno})"


def _ran_out(error: BaseException) -> bool:
    """Whether a typed error wraps a MemoryError (the executor's DeviceMemoryError, a fold that failed):
    that is memory past the cap, not a refusal before allocating."""
    seen = error.__cause__ or error.__context__
    while seen is not None:
        if isinstance(seen, MemoryError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
