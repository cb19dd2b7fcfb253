"""Batches handed to the device ahead of the step that needs them: a background thread runs the Loader.

While the trainer computes step k, the thread draws the next batches (indexing, augmentation,
normalisation) and hands each to ``backend.stage`` (on CuPy, a copy on a side stream), so neither
the data preparation nor the host-to-device copy waits for the step. The queue holds ``depth``
batches, so the thread runs at most that far ahead; ``depth=0`` draws each batch in the caller's
thread when it is asked for.

Resumable: the Loader's generator draws each batch's augmentation, so once the thread is ahead the
Loader's own state is not the trainer's. Each batch travels with the Loader state captured right
after it was drawn, and closing the feed early puts the Loader back to the state of the last batch
handed out: a checkpoint taken then resumes at exactly the next batch. An epoch run to its end
leaves the Loader as it would be without the thread.

An exception in the thread is raised in the consumer. Leaving the ``with`` block (the epoch's end,
an error in the step, Ctrl-C) stops the thread and waits for it, so none is left running.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from cnngraph.errors import TrainingError
from cnngraph.train.data.loader import Loader

_POLL_S = 0.05  # how often a thread blocked on a full queue looks whether it was told to stop


class Prefetch:
    """``with Prefetch(loader, backend, dtype) as batches: for x, y in batches: ...``: (x, y) as device arrays."""

    def __init__(self, loader: Loader, backend: Any, dtype: Any = None, depth: int = 1):
        if depth < 0:
            raise TrainingError(f"prefetch depth must be >= 0, got {depth}")
        self.loader, self.backend, self.dtype, self.depth = loader, backend, dtype, depth
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumed = loader.state()  # the Loader's state as of the last batch handed out
        self._open = self._exhausted = False

    @property
    def position(self) -> int:
        """Batches of this epoch handed out so far (the Loader itself may be further on)."""
        return int(self._consumed[0]["position"])

    def _stage(self, x, y) -> tuple[Any, Any]:
        return self.backend.stage(x, self.dtype), self.backend.stage(y)

    # -- the producer ------------------------------------------------------------------------
    def _produce(self) -> None:
        try:
            for x, y in self.loader:
                if not self._put(("batch", *self._stage(x, y), self.loader.state())):
                    return
            self._put(("end",))
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(("error", error))

    def _put(self, item: tuple) -> bool:
        """Queue ``item`` unless told to stop first; whether it was queued."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                pass
        return False

    # -- the consumer ------------------------------------------------------------------------
    def __enter__(self) -> Prefetch:
        self._open = True
        if self.depth:
            self._thread = threading.Thread(target=self._produce, name="cnngraph-prefetch", daemon=True)
            self._thread.start()
        return self

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if not self._open:
            raise TrainingError("a Prefetch hands out batches inside its with block only")
        if not self.depth:
            for x, y in self.loader:
                self._consumed = self.loader.state()
                yield self._stage(x, y)
            self._exhausted = True
            return
        while True:
            kind, *rest = self._queue.get()
            if kind == "end":
                self._exhausted = True
                return
            if kind == "error":
                raise rest[0]
            x, y, self._consumed = rest
            yield x, y

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop and join the thread; unless the epoch ran out, rewind the Loader to the last batch handed out."""
        if not self._open:
            return
        self._open = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self._exhausted:
            self.loader.load_state(*self._consumed)
