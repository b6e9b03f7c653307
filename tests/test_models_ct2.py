"""The CTranslate2 model.bin reader and writer."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from clasr.models.ct2 import CT2Model, read_ct2_model, write_ct2_model
from clasr.models.errors import ModelError


def packed_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def packed_variable(name: str, shape: tuple[int, ...], dtype_id: int, data: bytes) -> bytes:
    return packed_string(name) + struct.pack(f"<B{len(shape)}IBI", len(shape), *shape, dtype_id, len(data)) + data


def hand_packed_model() -> bytes:
    """A model.bin built field by field with struct, independently of the writer."""
    bfloat16_bits = struct.pack("<2H", 0x3F80, 0xC040)  # 1.0 and -3.0
    return b"".join(
        [
            struct.pack("<I", 6),
            packed_string("WhisperSpec"),
            struct.pack("<II", 3, 4),
            packed_variable("encoder/num_heads", (), 2, struct.pack("<h", 6)),
            packed_variable("flag", (), 1, struct.pack("<b", -1)),
            packed_variable("w", (2, 3), 4, np.arange(6, dtype="<f2").tobytes()),
            packed_variable("b", (2,), 5, bfloat16_bits),
            struct.pack("<I", 1),
            packed_string("w_alias"),
            packed_string("w"),
        ]
    )


def every_dtype_model() -> CT2Model:
    rng = np.random.default_rng(0)
    variables = {
        "scalar/f32": np.array(1.5, dtype=np.float32),
        "scalar/i16": np.array(-7, dtype=np.int16),
        "vector/i8": np.array([-128, 0, 127], dtype=np.int8),
        "matrix/i32": rng.integers(-(2**31), 2**31 - 1, size=(3, 4), dtype=np.int32),
        "cube/f16": rng.standard_normal((2, 3, 4)).astype(np.float16),
        "matrix/f32": rng.standard_normal((5, 2)).astype(np.float32),
        "vector/bf16": np.array([1.0, -2.5, -0.0, 2.0**127, np.inf], dtype=np.float32),
        "empty/f32": np.zeros((0, 3), dtype=np.float32),
    }
    aliases = {"alias/of/matrix": "matrix/f32"}
    return CT2Model(6, "TestSpec", 2, variables, aliases, bfloat16_names={"vector/bf16"})


def test_hand_packed_bytes_read_as_expected(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(hand_packed_model())
    model = read_ct2_model(path)
    assert (model.version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    assert list(model.variables) == ["encoder/num_heads", "flag", "w", "b"]
    assert model.scalar("encoder/num_heads") == 6 and model.scalar("flag") == -1
    assert model.variables["w"].dtype == np.float16
    np.testing.assert_array_equal(model.variables["w"], np.arange(6).reshape(2, 3))
    assert model.variables["b"].dtype == np.float32
    np.testing.assert_array_equal(model.variables["b"], [1.0, -3.0])
    assert model.bfloat16_names == {"b"}
    assert model.aliases == {"w_alias": "w"}
    assert model.resolve("w_alias") is model.variables["w"]


def test_writer_reproduces_hand_packed_bytes(tmp_path: Path) -> None:
    original = tmp_path / "original.bin"
    original.write_bytes(hand_packed_model())
    copy = tmp_path / "copy.bin"
    write_ct2_model(copy, read_ct2_model(original))
    assert copy.read_bytes() == original.read_bytes()


def test_round_trip_of_every_dtype_and_rank(tmp_path: Path) -> None:
    model = every_dtype_model()
    path = tmp_path / "model.bin"
    write_ct2_model(path, model)
    back = read_ct2_model(path)
    assert (back.version, back.spec_name, back.spec_revision) == (6, "TestSpec", 2)
    assert list(back.variables) == list(model.variables)
    for name, array in model.variables.items():
        assert back.variables[name].dtype == array.dtype, name
        assert back.variables[name].shape == array.shape, name
        np.testing.assert_array_equal(back.variables[name], array)
    assert back.aliases == model.aliases and back.bfloat16_names == {"vector/bf16"}
    assert back.scalar("scalar/f32") == 1.5 and back.scalar("scalar/i16") == -7
    again = tmp_path / "again.bin"
    write_ct2_model(again, back)
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("keep", [0, 3, 5, 20, 40, -30, -1])
def test_truncated_file_names_the_file(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "cut.bin"
    path.write_bytes(hand_packed_model()[:keep])
    with pytest.raises(ModelError, match=rf"{path}.*truncated"):
        read_ct2_model(path)


def corrupt(tmp_path: Path, old: bytes, new: bytes) -> Path:
    data = hand_packed_model()
    assert data.count(old) == 1
    path = tmp_path / "corrupt.bin"
    path.write_bytes(data.replace(old, new))
    return path


def test_unknown_dtype_names_file_and_variable(tmp_path: Path) -> None:
    header = packed_string("w") + struct.pack("<B2I", 2, 2, 3)
    path = corrupt(tmp_path, header + b"\x04", header + b"\x09")
    with pytest.raises(ModelError, match=rf"{path}: variable 'w' has unknown dtype id 9"):
        read_ct2_model(path)


def test_byte_count_mismatch_names_file_and_variable(tmp_path: Path) -> None:
    header = packed_string("w") + struct.pack("<B2IB", 2, 2, 3, 4)
    path = corrupt(tmp_path, header + struct.pack("<I", 12), header + struct.pack("<I", 10))
    with pytest.raises(ModelError, match=rf"{path}: variable 'w' declares 10 bytes .* needs 12"):
        read_ct2_model(path)


def test_unsupported_version_and_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(struct.pack("<I", 5) + hand_packed_model()[4:])
    with pytest.raises(ModelError, match=rf"{path}: binary version 5 is not supported"):
        read_ct2_model(path)
    path.write_bytes(hand_packed_model() + b"\0\0")
    with pytest.raises(ModelError, match="2 unexpected bytes"):
        read_ct2_model(path)


def test_scalar_and_resolve_errors() -> None:
    model = every_dtype_model()
    with pytest.raises(ModelError, match="expected a scalar"):
        model.scalar("matrix/f32")
    with pytest.raises(ModelError, match="no variable 'missing'"):
        model.scalar("missing")
    with pytest.raises(ModelError, match="no variable 'missing'"):
        model.resolve("missing")


def test_writer_refuses_what_model_bin_cannot_hold(tmp_path: Path) -> None:
    model = CT2Model(6, "TestSpec", 1, {"x": np.zeros(2, dtype=np.float64)}, {})
    with pytest.raises(ModelError, match="'x' has dtype float64"):
        write_ct2_model(tmp_path / "model.bin", model)
    model = CT2Model(6, "TestSpec", 1, {"x": np.array([0.1], dtype=np.float32)}, {}, bfloat16_names={"x"})
    with pytest.raises(ModelError, match="not exactly bfloat16"):
        write_ct2_model(tmp_path / "model.bin", model)
