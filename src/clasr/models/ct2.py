"""Read and write CTranslate2 ``model.bin`` files (binary version 6).

Layout, little endian::

    u32 version; str spec_name; u32 spec_revision; u32 n_variables
    n_variables x { str name; u8 rank; u32 dims[rank]; u8 dtype; u32 nbytes; raw bytes }
    u32 n_aliases; n_aliases x { str alias; str target }

where ``str`` is a u16 length (counting a trailing NUL) followed by the bytes and the NUL,
and dtype is 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16. Scalars (head
counts, flags, the activation id) are rank-0 variables.

NumPy has no bfloat16, so bfloat16 variables are held as float32 (every bfloat16 value is
exactly a float32) and their names kept in ``CT2Model.bfloat16_names``; the writer stores
them as bfloat16 again, so reading and writing round-trips byte for byte.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clasr.models.errors import ModelError

SUPPORTED_VERSION = 6
"""The binary version this module reads and writes (the one current CTranslate2 writes)."""

BFLOAT16 = 5
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    BFLOAT16: np.dtype("<u2"),  # raw bfloat16 bits, widened to float32 after reading
}
DTYPE_IDS: dict[np.dtype, int] = {dtype: dtype_id for dtype_id, dtype in DTYPES.items() if dtype_id != BFLOAT16}


@dataclass
class CT2Model:
    """The content of a ``model.bin``: header, named arrays and aliases (alias -> target)."""

    version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]
    bfloat16_names: set[str] = field(default_factory=set)
    source: str = "<in memory>"

    def scalar(self, name: str) -> int | float:
        """The value of the rank-0 variable ``name`` as a Python number."""
        value = self.variables.get(name)
        if value is None:
            raise ModelError(f"{self.source}: no variable {name!r}")
        if value.ndim != 0:
            raise ModelError(f"{self.source}: variable {name!r} has shape {value.shape}, expected a scalar")
        return value.item()

    def resolve(self, name: str) -> np.ndarray:
        """The array stored under ``name``, following an alias if ``name`` is one."""
        target = self.aliases.get(name, name)
        if target not in self.variables:
            raise ModelError(f"{self.source}: no variable {name!r}")
        return self.variables[target]


class _Reader:
    """Sequential little-endian reads from a buffer; running off its end is a ModelError."""

    def __init__(self, buffer: bytearray, source: str) -> None:
        self.buffer = buffer
        self.source = source
        self.offset = 0

    def take(self, size: int, what: str) -> memoryview:
        if self.offset + size > len(self.buffer):
            raise ModelError(
                f"{self.source}: file is truncated while reading {what} "
                f"(needs {size} bytes at offset {self.offset}, file has {len(self.buffer)})"
            )
        view = memoryview(self.buffer)[self.offset : self.offset + size]
        self.offset += size
        return view

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        length = self.unpack("H", f"the length of {what}")
        raw = bytes(self.take(length, what))
        if length == 0 or raw[-1] != 0:
            raise ModelError(f"{self.source}: {what} at offset {self.offset - length} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as error:
            raise ModelError(f"{self.source}: {what} is not valid UTF-8 ({error})") from None


def read_ct2_model(path: str | os.PathLike) -> CT2Model:
    """Read a CTranslate2 ``model.bin``; any inconsistency is a ModelError naming the file."""
    path = Path(path)
    with path.open("rb") as file:
        buffer = bytearray(os.fstat(file.fileno()).st_size)
        file.readinto(buffer)
    reader = _Reader(buffer, str(path))
    version = reader.unpack("I", "the binary version")
    if version != SUPPORTED_VERSION:
        raise ModelError(f"{path}: binary version {version} is not supported (this reader knows {SUPPORTED_VERSION})")
    spec_name = reader.string("the spec name")
    spec_revision = reader.unpack("I", "the spec revision")
    variables: dict[str, np.ndarray] = {}
    bfloat16_names: set[str] = set()
    for index in range(reader.unpack("I", "the number of variables")):
        name, array, is_bfloat16 = _read_variable(reader, index)
        variables[name] = array
        if is_bfloat16:
            bfloat16_names.add(name)
    aliases = {}
    for index in range(reader.unpack("I", "the number of aliases")):
        alias = reader.string(f"alias #{index}")
        aliases[alias] = reader.string(f"the target of alias {alias!r}")
    if reader.offset != len(buffer):
        raise ModelError(f"{path}: {len(buffer) - reader.offset} unexpected bytes after the aliases")
    return CT2Model(version, spec_name, spec_revision, variables, aliases, bfloat16_names, str(path))


def _read_variable(reader: _Reader, index: int) -> tuple[str, np.ndarray, bool]:
    """Read one variable record: its name, its array, whether it was stored as bfloat16."""
    name = reader.string(f"the name of variable #{index}")
    rank = reader.unpack("B", f"the rank of variable {name!r}")
    shape = tuple(reader.unpack("I", f"the dimensions of variable {name!r}") for _ in range(rank))
    dtype_id = reader.unpack("B", f"the dtype of variable {name!r}")
    if dtype_id not in DTYPES:
        raise ModelError(f"{reader.source}: variable {name!r} has unknown dtype id {dtype_id} (known: 0-5)")
    nbytes = reader.unpack("I", f"the byte count of variable {name!r}")
    dtype = DTYPES[dtype_id]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes != expected:
        raise ModelError(
            f"{reader.source}: variable {name!r} declares {nbytes} bytes but shape {shape} "
            f"of {dtype.name} needs {expected}"
        )
    array = np.frombuffer(reader.take(nbytes, f"the data of variable {name!r}"), dtype=dtype).reshape(shape)
    if dtype_id == BFLOAT16:
        return name, (array.astype(np.uint32) << 16).view(np.float32), True
    return name, array, False


def write_ct2_model(path: str | os.PathLike, model: CT2Model) -> None:
    """Write ``model`` to ``path`` in the layout that :func:`read_ct2_model` reads."""
    Path(path).write_bytes(ct2_model_bytes(model))


def ct2_model_bytes(model: CT2Model) -> bytes:
    """The content of the ``model.bin`` of ``model`` (what CTranslate2 can also load from memory)."""
    chunks = [
        struct.pack("<I", model.version),
        _pack_string(model.spec_name),
        struct.pack("<II", model.spec_revision, len(model.variables)),
    ]
    for name, array in model.variables.items():
        chunks.extend(_pack_variable(name, np.asarray(array), name in model.bfloat16_names))
    chunks.append(struct.pack("<I", len(model.aliases)))
    for alias, target in model.aliases.items():
        chunks.extend([_pack_string(alias), _pack_string(target)])
    return b"".join(chunks)


def _pack_string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _pack_variable(name: str, array: np.ndarray, as_bfloat16: bool) -> list[bytes]:
    """The bytes of one variable record."""
    if as_bfloat16:
        dtype_id, data = BFLOAT16, _to_bfloat16_bits(name, array)
    else:
        dtype = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        if dtype not in DTYPE_IDS:
            raise ModelError(f"variable {name!r} has dtype {array.dtype}, which model.bin cannot store")
        dtype_id, data = DTYPE_IDS[dtype], np.ascontiguousarray(array, dtype=dtype)
    header = _pack_string(name) + struct.pack(f"<B{array.ndim}I", array.ndim, *array.shape)
    return [header, struct.pack("<BI", dtype_id, data.nbytes), data.tobytes()]


def _to_bfloat16_bits(name: str, array: np.ndarray) -> np.ndarray:
    """The upper 16 bits of float32 values that are exactly bfloat16; refuses any rounding."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4")
    if np.any(bits & 0xFFFF):
        raise ModelError(f"variable {name!r} is marked bfloat16 but holds values that are not exactly bfloat16")
    return (bits >> 16).astype("<u2")
