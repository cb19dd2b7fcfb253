"""The size budget: how many bytes one thing a file asks for may take before we allocate it.

A few bytes of a file can claim a tensor of 10^12 elements, a label of 10^12 classes or a gzip
stream that inflates a thousandfold. Every loader asks ``check_bytes`` before it allocates what a
file asks for, so such a file fails with a one-line typed error instead of exhausting memory.
The budget is ``CNNGRAPH_MAX_BYTES`` (bytes; suffixes K, M, G, T allowed) or, by default, half of
physical memory.
"""

from __future__ import annotations

import os

from cnngraph.errors import CnnGraphError

ENV = "CNNGRAPH_MAX_BYTES"
DEFAULT_FRACTION = 0.5
FALLBACK = 4 * 2**30  # when physical memory cannot be told
SUFFIXES = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def physical_memory() -> int | None:
    """Bytes of RAM, from sysconf or /proc/meminfo; None where neither says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def max_bytes() -> int:
    """The budget now (read on every call, so tests and long-lived processes see a changed variable)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        memory = physical_memory()
        return int(memory * DEFAULT_FRACTION) if memory else FALLBACK
    scale = SUFFIXES.get(text[-1].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    try:
        value = int(float(digits) * scale)
    except ValueError:
        raise CnnGraphError(f"{ENV}={text!r}: expected a number of bytes such as 2000000000 or 2G") from None
    if value < 1:
        raise CnnGraphError(f"{ENV}={text!r}: the budget must be positive")
    return value


def check_bytes(nbytes: int, what: str, error: type[CnnGraphError] = CnnGraphError) -> int:
    """``nbytes`` (an exact Python int: no int64 wrap) if it fits the budget, else ``error`` naming ``what``."""
    budget = max_bytes()
    if nbytes > budget:
        raise error(f"{what} needs {describe(nbytes)}, over the {describe(budget)} budget ({ENV})")
    return nbytes


def read_bounded(path: str | os.PathLike, error: type[CnnGraphError] = CnnGraphError) -> bytes:
    """A whole file's bytes, after checking its size against the budget; OSError becomes ``error``."""
    try:
        check_bytes(os.path.getsize(path), f"{path}", error)
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror or e})") from None


def array_bytes(shape, itemsize: int) -> int:
    """Bytes of an array of ``shape``, in exact integer arithmetic (so 2^32 x 2^32 does not wrap to 0)."""
    total = itemsize
    for d in shape:
        total *= int(d)
    return total


def describe(nbytes: int) -> str:
    if nbytes >= 2**80:  # a product of file-given dims can pass any float: say its order of magnitude
        return f"about 2^{nbytes.bit_length() - 1} bytes"
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= size:
            return f"{nbytes / size:,.1f} {unit}"
    return f"{nbytes} bytes"
