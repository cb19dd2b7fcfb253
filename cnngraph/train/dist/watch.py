"""The launcher's watch over its ranks: which one died, told by the operating system, not by MPI.

When a rank dies, MPICH's mpiexec either kills every other rank at once (its default) or, with
``-disable-auto-cleanup``, signals them, yet on this machine it still killed the survivors before
they could speak in about half of the trials. So ``cnngraph train --workers`` listens on a Unix
socket (``CNNGRAPH_DIST_WATCH``): every rank connects and sends its rank number and process id,
``bye`` when it ends well and ``failed`` after reporting its own error. A connection that closes without either
is a rank that died, and the kernel closes it the moment the process ends, so the first such rank
is the one that died first. A rank's own error (a peer that hangs, found by the fault watch's
timeout) reaches the launcher as a line in the file ``CNNGRAPH_DIST_REPORT``. The launcher then
kills the ranks still connected (``stop``): a rank stopped or stuck in a kernel ignores gentler
requests, and mpiexec waits for every rank.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys

REPORT_ENV = "CNNGRAPH_DIST_REPORT"
WATCH_ENV = "CNNGRAPH_DIST_WATCH"


def report(line: str) -> None:
    """A failing rank's line: in the launcher's report file when there is one (mpiexec may drop a rank's last
    output once another has failed), else on stderr."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        print(line, file=sys.stderr, flush=True)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


class RankLink:
    """A rank's connection to the launcher's watch (nothing when no launcher watches)."""

    def __init__(self, rank: int):
        self.sock = None
        path = os.environ.get(WATCH_ENV)
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(path)
            self.sock.sendall(f"{rank} {os.getpid()}\n".encode())

    def say(self, word: str) -> bool:
        """Tell the launcher ``word``; whether one listens."""
        if self.sock is not None:
            self.sock.sendall(f"{word}\n".encode())
        return self.sock is not None


class Watch:
    """The launcher's side: ``first`` is what happened first, ``("died", rank)`` or ``("failed", rank)`` (that
    rank reported an error, a peer that hangs for instance), or None while all is well."""

    def __init__(self, path: str):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.said: dict[socket.socket, str] = {}
        self.first: tuple[str, int] | None = None

    def poll(self, seconds: float) -> tuple[str, int] | None:
        for key, _ in self.selector.select(seconds):
            if key.fileobj is self.listener:
                conn, _ = self.listener.accept()
                self.said[conn] = ""
                self.selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            data = conn.recv(4096)
            if data:
                self.said[conn] += data.decode()
                words = self.said[conn].split()
                if "failed" in words[2:] and self.first is None:
                    self.first = ("failed", int(words[0]))
                continue
            self.selector.unregister(conn)
            words = self.said.pop(conn).split()
            if words and not {"bye", "failed"} & set(words[2:]) and self.first is None:
                self.first = ("died", int(words[0]))
            conn.close()
        return self.first

    def stop(self) -> None:
        """Kill the ranks still connected (the launcher's, so on this machine)."""
        for text in self.said.values():
            words = text.split()
            if len(words) > 1 and words[1].isdigit():
                try:
                    os.kill(int(words[1]), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        for conn in self.said:
            conn.close()
        self.selector.close()
        self.listener.close()
