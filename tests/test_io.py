"""Native .cng files round-trip exactly, and bad files fail with a clear ModelFileError."""

import os

import numpy as np
import pytest

import cnngraph
from cnngraph import io
from cnngraph.errors import ModelFileError
from cnngraph.frontends import dsl


def model():
    x = dsl.input("x", (3, 12, 12))
    with dsl.scope("block"):
        y = dsl.conv2d(x, 4, 3, stride=2, padding="same", name="conv")
        y = dsl.batch_norm(y, name="bn")
    return dsl.Model(x, dsl.relu(y), seed=3)


def test_round_trip_keeps_structure_params_and_numbers(tmp_path):
    g = model()
    path = tmp_path / "m.cng"
    io.save(g, path)
    back = io.load(path)
    assert str(back) == str(g)
    assert back.params.keys() == g.params.keys()
    for k in g.params:
        np.testing.assert_array_equal(back.params[k], g.params[k])
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(cnngraph.compile(back)(x), cnngraph.compile(g)(x))


def test_scalar_constants_keep_their_zero_dimensional_shape(tmp_path):
    x = dsl.input("x", (3, 4, 4))
    g = dsl.Model(x, dsl.mul(x, dsl.constant(0.5, name="half")))
    io.save(g, tmp_path / "s.cng")
    assert io.load(tmp_path / "s.cng").params["half.value"].shape == ()


@pytest.mark.parametrize("cut", [0, 4, 40, -3])
def test_truncated_file_gives_clear_error(tmp_path, cut):
    path = tmp_path / "m.cng"
    io.save(model(), path)
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut >= 0 else data[:cut])
    with pytest.raises(ModelFileError, match=str(path)):
        io.load(path)


def test_foreign_safetensors_and_garbage_are_rejected(tmp_path):
    from safetensors.numpy import save_file

    foreign = tmp_path / "weights.cng"
    save_file({"a": np.zeros(2, np.float32)}, str(foreign))
    with pytest.raises(ModelFileError, match="not a cnngraph model"):
        io.load(foreign)
    garbage = tmp_path / "junk.cng"
    garbage.write_bytes(os.urandom(64))
    with pytest.raises(ModelFileError):
        io.load(garbage)
    with pytest.raises(ModelFileError, match="no such file"):
        io.load(tmp_path / "absent.cng")


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.cng"
    io.save(model(), path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ModelFileError, match="m.cng: cannot write \\(disk full\\)"):
        io.save(model(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.cng"]


def test_saved_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        io.save(model(), tmp_path / "m.cng")
    finally:
        os.umask(old)
    assert (tmp_path / "m.cng").stat().st_mode & 0o777 == 0o644


def test_unwritable_destination_is_one_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="cannot write"):
        io.save(model(), tmp_path / "missing-folder" / "m.cng")
