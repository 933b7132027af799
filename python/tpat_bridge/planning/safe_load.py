"""Loads an ONNX model from a stranger without following its external-data paths blindly.

onnx.load(load_external_data=True) opens whatever `location` says: a symbolic link to
/etc/passwd, a FIFO (blocks forever), the same 256 MB file for many tensors. Here the model is
read without external data, then each external tensor is read under the rules the Swift loader
(ExternalDataReader in ONNXModel.swift) applies: a relative path inside the model's folder, no
`..`, no symbolic link on any component, a regular file (opened O_NOFOLLOW|O_NONBLOCK),
offset + length inside the file, and no more bytes taken from a file than it holds.
"""

import os
import stat

import onnx

from ..errors import BridgeError


def _tensors(graph):
    """Every TensorProto of a graph: initializers, sparse tensors, attributes, subgraphs."""

    def sparse(s):
        if s.HasField("values"):
            yield s.values
        if s.HasField("indices"):
            yield s.indices

    yield from graph.initializer
    for s in graph.sparse_initializer:
        yield from sparse(s)
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("sparse_tensor"):
                yield from sparse(a.sparse_tensor)
            for s in a.sparse_tensors:
                yield from sparse(s)
            if a.HasField("g"):
                yield from _tensors(a.g)
            for g in a.graphs:
                yield from _tensors(g)


def _byte_size(t):
    """Bytes the tensor's dims and type call for; None for strings and sub-byte types."""
    if t.data_type in (0, onnx.TensorProto.STRING, onnx.TensorProto.INT4, onnx.TensorProto.UINT4) or t.data_type > 20:
        return None
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except Exception:  # noqa: BLE001
        return None
    count = 1
    for d in t.dims:
        if d < 0:
            return -1
        count *= d
    return count * itemsize


def _fail(tensor, why):
    return BridgeError("model", f"external data of tensor {tensor.name!r}: {why}")


class _Reader:
    def __init__(self, base: str):
        self.base = base
        self.files = {}  # (dev, ino) -> [fd, size, taken]

    def close(self):
        for fd, _, _ in self.files.values():
            os.close(fd)

    def read(self, t):
        entries = {}
        for e in t.external_data:
            if e.key in entries:
                raise _fail(t, f"key {e.key!r} is given twice")
            entries[e.key] = e.value
        location = entries.get("location", "")
        if not location:
            raise _fail(t, "no location")
        parts = [p for p in location.split("/") if p]
        if location.startswith("/") or "\\" in location or "\0" in location or not parts or ".." in parts:
            raise _fail(t, f"location {location!r} is outside the model's folder")
        path = self.base
        for k, part in enumerate(parts):
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except OSError:
                raise _fail(t, f"file {location!r} is missing") from None
            if stat.S_ISLNK(st.st_mode):
                raise _fail(t, f"{location!r} goes through a symbolic link")
            if k < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
                raise _fail(t, f"{location!r} is not a path to a file")
            if k == len(parts) - 1 and not stat.S_ISREG(st.st_mode):
                raise _fail(t, f"{location!r} is not a regular file")

        def number(key):
            if key not in entries:
                return None
            v = entries[key]
            if not (v.isascii() and v.isdigit()):  # str.isdigit accepts '²', which int() refuses
                raise _fail(t, f"{key} {v!r} is not a byte count")
            return int(v)

        offset = number("offset") or 0
        length = number("length")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise _fail(t, f"{location!r} is not a regular file")
        key = (st.st_dev, st.st_ino)
        if key in self.files:
            os.close(fd)
        else:
            self.files[key] = [fd, st.st_size, 0]
        entry = self.files[key]
        size = entry[1]
        if length is None:
            length = max(0, size - offset)
        if offset > size or offset + length > size:
            raise _fail(t, f"offset {offset} + length {length} is past the end of {location!r} ({size} bytes)")
        expected = _byte_size(t)
        if expected is not None and expected != length:
            raise _fail(t, f"{length} bytes in {location!r}, but its type and dims need {expected}")
        if entry[2] + length > size:
            raise _fail(t, f"the tensors read more bytes from {location!r} than its {size} (overlapping external data)")
        entry[2] += length
        data = os.pread(entry[0], length, offset)
        if len(data) != length:
            raise _fail(t, f"cannot read {length} bytes of {location!r}")
        t.raw_data = data
        t.data_location = onnx.TensorProto.DEFAULT
        del t.external_data[:]


def load_model(path: str) -> onnx.ModelProto:
    """The model with its external data read in, under the rules above."""
    if not path or not os.path.isfile(path):
        raise BridgeError("input", f"no such model file: {path}")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001
        raise BridgeError("model", f"onnx cannot load {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    reader = _Reader(os.path.dirname(os.path.abspath(path)))
    try:
        for t in _tensors(model.graph):
            if t.data_location == onnx.TensorProto.EXTERNAL:
                reader.read(t)
    finally:
        reader.close()
    return model
