"""Mutations of a valid file, drawn by hypothesis as plain tuples and applied in the fuzz worker.

Bytes-level edits (bit flips, bytes, integers written over headers, cuts, inserts, deletes) find
truncations and corrupt framing; ``digits`` rewrites a number in text (a ``.cng``'s JSON header,
an ``.npy`` header inside an ``.npz``, CIFAR's class names), keeping the container's framing true
so the edit reaches the loader's own checks, and ``proto`` sets an integer field of an ONNX
protobuf (dims, strides, pads, element types, attribute values): that is how a few bytes ask for
10^12 elements or a stride of 2^62.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

INTERESTING = [0, 1, 2, 3, 7, -1, -2, 255, 256, 2**15, 2**16, 40000, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
               10**9, 10**12, 2**62, 2**63 - 1, -(2**31), -(2**63)]
position = st.one_of(st.integers(0, 64), st.integers(0, 2**24))
number = st.one_of(st.sampled_from(INTERESTING), st.integers(-(2**63), 2**63 - 1))

proto = st.one_of(st.tuples(st.just("proto"), st.integers(0, 2000), number),
                  st.tuples(st.just("proto_bytes"), st.integers(0, 2000), st.binary(max_size=12)))
mutation = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(0, 7)),
    st.tuples(st.just("byte"), position, st.integers(0, 255)),
    st.tuples(st.just("int"), position, number, st.sampled_from([1, 2, 4, 8]), st.sampled_from(["big", "little"])),
    st.tuples(st.just("cut"), position),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), position, st.integers(1, 64)),
    st.tuples(st.just("digits"), st.integers(0, 200), number),
)
cases = st.tuples(st.integers(0, 31), st.lists(mutation, min_size=1, max_size=3))  # (which file, edits)
# A protobuf cut or flipped anywhere mostly fails to parse: ONNX cases are mostly field edits.
mostly_proto = st.integers(0, 3).flatmap(lambda k: mutation if k == 0 else proto)  # one_of would weigh leaves evenly
proto_cases = st.tuples(st.integers(0, 31), st.lists(mostly_proto, min_size=1, max_size=3))


def apply(files: dict[str, bytes], file_index: int, edits: list[tuple]) -> tuple[dict[str, bytes], str]:
    """``files`` with the ``file_index``-th (modulo) file edited; returns them and that file's name."""
    name = sorted(files)[file_index % len(files)]
    data = files[name]
    for edit in edits:
        data = _edit(data, name, edit)
    return {**files, name: data}, name


def _edit(data: bytes, name: str, edit: tuple) -> bytes:
    kind, *args = edit
    if kind in ("proto", "proto_bytes"):
        return _proto(data, kind, *args) if name.endswith(".onnx") else data
    if kind == "digits":
        inside = INSIDE.get(Path(name).suffix)
        return inside(data, *args) if inside else _digits(data, *args)
    if not data:
        return data
    at = args[0] % len(data)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (1 << args[1])]) + data[at + 1:]
    if kind == "byte":
        return data[:at] + bytes([args[1]]) + data[at + 1:]
    if kind == "int":
        value, width, order = args[1:]
        raw = (value % 2 ** (8 * width)).to_bytes(width, order)
        return data[:at] + raw + data[at + width:]
    if kind == "cut":
        return data[:at]
    if kind == "insert":
        return data[:at] + args[1] + data[at:]
    return data[:at] + data[at + args[1]:]  # delete


def _digits(data: bytes, index: int, value: int) -> bytes:
    """The ``index``-th (modulo) run of ASCII digits replaced by ``value``."""
    runs = list(re.finditer(rb"\d+", data))
    if not runs:
        return data
    run = runs[index % len(runs)]
    return data[:run.start()] + str(value).encode() + data[run.end():]


def _in_safetensors_header(data: bytes, index: int, value: int) -> bytes:
    """A number in the JSON header (the graph's strides, shapes, offsets), with the length prefix kept true."""
    if len(data) < 8:
        return _digits(data, index, value)
    size = int.from_bytes(data[:8], "little")
    header = _digits(data[8:8 + size], index, value)
    return len(header).to_bytes(8, "little") + header + data[8 + size:]


def _in_zip_members(data: bytes, index: int, value: int) -> bytes:
    """A number in one member (an ``.npy`` header's shape), the archive rewritten with true sizes and CRCs."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = {i.filename: z.read(i) for i in z.infolist()}
    except Exception:  # noqa: BLE001 - an archive an earlier edit broke: edit its bytes instead
        return _digits(data, index, value)
    if not members:
        return data
    name = sorted(members)[index % len(members)]
    members[name] = _digits(members[name], index // len(members), value)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for member, raw in members.items():
            z.writestr(member, raw)
    return out.getvalue()


INSIDE = {".cng": _in_safetensors_header, ".safetensors": _in_safetensors_header, ".npz": _in_zip_members}


def _proto(data: bytes, kind: str, index: int, value) -> bytes:
    """Set the ``index``-th (modulo) integer or bytes field of an ONNX model to ``value``."""
    import onnx
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        return data
    slots = []
    _slots(model, kind == "proto_bytes", slots)
    if not slots:
        return data
    message, field, k = slots[index % len(slots)]
    if kind == "proto":
        value = _fit(field, value)
    elif field.type == field.TYPE_STRING:
        value = value.decode("latin-1")  # string fields hold text; bytes fields (attribute s) any bytes
    if k is None:
        setattr(message, field.name, value)
    else:
        getattr(message, field.name)[k] = value
    return model.SerializeToString()


def _slots(message, want_bytes: bool, out: list) -> None:
    from google.protobuf.message import Message

    for field, value in message.ListFields():
        repeated = not isinstance(value, (Message, bytes, str, int, float))
        if field.type == field.TYPE_MESSAGE:
            for item in (value if repeated else [value]):
                _slots(item, want_bytes, out)
            continue
        is_bytes = field.type in (field.TYPE_BYTES, field.TYPE_STRING)
        is_int = field.cpp_type in (field.CPPTYPE_INT32, field.CPPTYPE_INT64, field.CPPTYPE_UINT32,
                                    field.CPPTYPE_UINT64)
        if (want_bytes and is_bytes) or (not want_bytes and is_int):
            out += [(message, field, k) for k in range(len(value))] if repeated else [(message, field, None)]


def _fit(field, value: int) -> int:
    """``value`` wrapped into the field's integer range, as a varint on the wire would be."""
    bits = 32 if field.cpp_type in (field.CPPTYPE_INT32, field.CPPTYPE_UINT32) else 64
    signed = field.cpp_type in (field.CPPTYPE_INT32, field.CPPTYPE_INT64)
    value %= 2**bits
    return value - 2**bits if signed and value >= 2 ** (bits - 1) else value


def drive(fmt: str, examples: int, check, phases=(Phase.generate, Phase.shrink)) -> None:
    """Draw ``examples`` cases for format ``fmt`` from a seed fixed per format and hand each to ``check``."""

    @seed(zlib.crc32(fmt.encode()))
    @settings(max_examples=examples, deadline=None, database=None, phases=phases,
              suppress_health_check=list(HealthCheck))
    @given(proto_cases if fmt == "ONNX" else cases)
    def run(case):
        check(case)

    run()
