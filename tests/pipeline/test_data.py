"""Data checks for `natopt optimize`: each bad input is one DataError naming the problem."""

from __future__ import annotations

import numpy as np
import pytest

from natopt.errors import DataError
from natopt.ir import Graph
from natopt.pipeline.data import MIN_SAMPLES, load_data, split_data


def specs(*shapes_and_dtypes):
    g = Graph("m")
    return [
        g.add_input(f"in{i}", shape, dtype) for i, (shape, dtype) in enumerate(shapes_and_dtypes)
    ]


IMAGE = specs((("batch", 1, 8, 8), "float32"))


def write(tmp_path, **arrays):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def images(n=40):
    return np.random.default_rng(0).normal(size=(n, 1, 8, 8)).astype(np.float64)


def test_loads_x_y_and_test_split_and_casts_to_model_dtype(tmp_path):
    path = write(
        tmp_path, x=images(), y=np.arange(40) % 10, x_test=images(12), y_test=np.arange(12) % 10
    )
    data, test = load_data(path, IMAGE, num_classes=10)
    assert len(data) == 40 and data.inputs[0].dtype == np.float32
    assert test is not None and len(test) == 12
    splits = split_data(data, test, seed=3)
    assert len(splits.search) + len(splits.val) + len(splits.finetune) == 40
    assert splits.test is test
    again = split_data(data, test, seed=3)
    np.testing.assert_array_equal(again.search.inputs[0], splits.search.inputs[0])


def test_inputs_by_model_names(tmp_path):
    two = specs((("batch", 4), "float32"), (("batch", 3), "int64"))
    path = write(tmp_path, in0=np.zeros((MIN_SAMPLES, 4)), in1=np.zeros((MIN_SAMPLES, 3), int))
    data, test = load_data(path, two)
    assert [a.dtype for a in data.inputs] == [np.float32, np.int64] and test is None


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": images()}, r"expected arrays named \['in0'\] \(or x\), found \['images'\]"),
        ({"x": images()[:, :, :4]}, r"axis 2: 4 != 8"),
        ({"x": images()[:, 0]}, r"has rank 4"),
        ({"x": images().astype(str)}, r"expected numbers"),
        ({"x": np.where(np.eye(8, dtype=bool), np.nan, images())}, r"NaN or infinite"),
        ({"x": images(), "y": np.arange(40) % 12}, r"range over \[0, 11\].*10 classes"),
        ({"x": images(), "y": np.arange(39)}, r"39 entries for 40 samples"),
        ({"x": images(), "y": np.zeros(40)}, r"1-D integer array"),
        ({"x": images(10)}, r"10 samples are too few"),
    ],
)
def test_bad_data_is_one_clear_error(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message):
        load_data(write(tmp_path, **arrays), IMAGE, num_classes=10)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "none.npz", IMAGE)
    bad = tmp_path / "bad.npz"
    bad.write_text("not an archive")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_data(bad, IMAGE)
