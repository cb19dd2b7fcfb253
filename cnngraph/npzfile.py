"""Reading ``.npz`` archives (and ``.npy`` arrays) a user hands us: headers checked before any data is
read, never pickle.

``numpy.load`` trusts the archive: a 100-byte ``.npy`` header claiming 10^12 elements is allocated
before a byte of data is read, and a corrupt member surfaces as BadZipFile, zlib.error, EOFError or
a tokenizer error. Here each member's header is parsed first, its shape and dtype are checked
against the bytes the member actually holds and against the size budget, and only then is the
data read (and inflated) exactly that far. Every failure is the caller's typed error, naming the
file and the member.
"""

from __future__ import annotations

import os
import tokenize
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy

from cnngraph.errors import CnnGraphError
from cnngraph.limits import array_bytes, check_bytes

KINDS = "biuf"  # bools, integers, floats: what weights and datasets hold; object arrays would need pickle
# What zipfile, zlib and numpy's header parser raise on a corrupt archive (RuntimeError: a member
# flagged as encrypted; NotImplementedError: an unknown compression method).
ARCHIVE_ERRORS = (OSError, EOFError, ValueError, TypeError, SyntaxError, RuntimeError, zipfile.BadZipFile,
                  zlib.error, tokenize.TokenError, NotImplementedError, RecursionError, UnicodeDecodeError)


class Npz:
    """An open archive: ``keys`` lists its arrays, ``read(key)`` reads one after checking its header."""

    def __init__(self, path: str | os.PathLike, error: type[CnnGraphError]):
        self.path, self.error = path, error
        try:
            check_bytes(os.path.getsize(path), f"{path}: the archive", error)
            self.zip = zipfile.ZipFile(path)
            members = {i.filename: i for i in self.zip.infolist()}
        except ARCHIVE_ERRORS as e:
            raise error(f"{path}: not a readable .npz archive ({type(e).__name__}: {e})") from None
        odd = sorted(name for name in members if not name.endswith(".npy"))
        if odd:
            self.close()
            raise error(f"{path}: not an .npz of arrays: member(s) {odd[:3]} are not .npy files")
        self.members = {name[:-4]: info for name, info in members.items()}

    @property
    def keys(self) -> list[str]:
        return list(self.members)

    def read(self, key: str) -> np.ndarray:
        info = self.members[key]
        where = f"{self.path}: array '{key}'"
        try:
            with self.zip.open(info) as f:
                return read_array(f, info.file_size, where, self.error)
        except ARCHIVE_ERRORS as e:
            raise self.error(f"{where}: corrupt ({type(e).__name__}: {e})") from None

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Npz:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_array(f, size: int, where: str, error: type[CnnGraphError]) -> np.ndarray:
    """The ``.npy`` array in the ``size``-byte stream ``f``: header parsed and checked against the bytes
    present and the budget first, then exactly that much data read."""
    shape, fortran, dtype = _header(f)
    if dtype.kind not in KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise error(f"{where}: dtype {dtype} is not a plain number type (object arrays need "
                    "pickle, which cnngraph never loads)")
    nbytes = array_bytes(shape, dtype.itemsize)
    present = size - f.tell()
    if nbytes != present:
        raise error(f"{where}: header says {shape} {dtype} ({nbytes:,} bytes), the file holds {present:,} bytes")
    check_bytes(nbytes, where, error)
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise error(f"{where}: truncated: {len(data):,} of {nbytes:,} bytes")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()


def read_npy(path: str | os.PathLike, error: type[CnnGraphError]) -> np.ndarray:
    """The array in the ``.npy`` file at ``path``."""
    try:
        with open(path, "rb") as f:
            return read_array(f, os.fstat(f.fileno()).st_size, str(path), error)
    except ARCHIVE_ERRORS as e:
        raise error(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from None


def _header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from a ``.npy`` header; ValueError for anything else."""
    version = npy.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = npy.read_array_header_2_0(f)
    else:
        raise ValueError(f"unknown .npy format version {version}")
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    return tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype)


def read_npz(path: str | os.PathLike, error: type[CnnGraphError]) -> dict[str, np.ndarray]:
    """Every array in the archive at ``path``."""
    with Npz(path, error) as archive:
        return {key: archive.read(key) for key in archive.keys}
