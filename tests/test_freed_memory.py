"""Executors keep freed memory in the heap (backends/freed_memory.py), judged by glibc's own accounting:
``mallinfo2`` counts the bytes in mapped blocks (``hblkhd``), which a large array adds to under glibc's
defaults and must not once the settings are made. Run in fresh interpreters: the setting is process-wide."""

import ctypes.util
import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, ctypes.util, sys
import numpy as np
from cnngraph.backends.freed_memory import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
kept = keep_freed_memory() if sys.argv[1] == "call" else None
before = libc.mallinfo2().hblkhd
big = np.ones(2**25, np.float32)  # 128 MiB: far above glibc's largest mmap threshold
print(kept, libc.mallinfo2().hblkhd - before >= big.nbytes)
"""


DEFAULT_ENV = {k: v for k, v in os.environ.items() if k != "CNNGRAPH_KEEP_FREED_MEMORY"}


def probe(*args, env=DEFAULT_ENV):
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True, env=env)
    return out.stdout.split()


def glibc_with_mallinfo2() -> bool:
    name = ctypes.util.find_library("c")
    return bool(name) and hasattr(ctypes.CDLL(name), "mallinfo2") and hasattr(ctypes.CDLL(name), "gnu_get_libc_version")


pytestmark = pytest.mark.skipif(not glibc_with_mallinfo2(), reason="glibc (2.33 or later) only")


def test_a_large_array_is_mapped_by_default_and_taken_from_the_heap_once_kept():
    assert probe("skip") == ["None", "True"]  # glibc's default: mapped, unmapped on free
    assert probe("call") == ["True", "False"]


def test_the_environment_opts_out():
    env = {**DEFAULT_ENV, "CNNGRAPH_KEEP_FREED_MEMORY": "0"}
    assert probe("call", env=env) == ["False", "True"]


@pytest.mark.parametrize("train", [False, True])
def test_a_numpy_executor_makes_the_setting(train):
    script = ("import cnngraph, cnngraph.backends.freed_memory as f; from cnngraph import models; "
              f"assert f._kept is None; cnngraph.compile(models.build('lenet5'), train={train}); print(f._kept)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=DEFAULT_ENV)
    assert out.stdout.split() == ["True"]
