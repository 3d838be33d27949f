"""LabelledArray: selection and reductions by axis name."""

import numpy as np
import pytest

from graphflow.inspect import LabelledArray


@pytest.fixture
def a():
    values = np.arange(24.0).reshape(2, 3, 4)
    return LabelledArray(values, ("step", "node", "channel"), {"node": ("a", "b", "c")})


def test_selection_by_label_and_position(a):
    assert a.sel(node="b").dims == ("step", "channel")
    np.testing.assert_array_equal(a.sel(node="b").values, a.values[:, 1])
    both = a.sel(node=["c", "a"]).isel(channel=[0, 3])  # lists keep the axis; each selects on its own axis
    assert both.shape == (2, 2, 2) and both.labels("node") == ("c", "a")
    np.testing.assert_array_equal(both.values, a.values[:, [2, 0]][:, :, [0, 3]])
    np.testing.assert_array_equal(a.isel(step=1, channel=[1, 2]).values, a.values[1][:, [1, 2]])
    with pytest.raises(KeyError, match="node='z' is not among the labels"):
        a.sel(node="z")
    with pytest.raises(KeyError, match="no axis 'example'"):
        a.mean("example")


def test_reductions_skip_nan_and_keep_labels(a):
    values = a.values.copy()
    values[0, 1] = np.nan
    b = LabelledArray(values, a.dims, a.coords)
    mean = b.mean("step")
    np.testing.assert_array_equal(mean.values[1], a.values[1, 1])  # the NaN step is skipped
    assert mean.labels("node") == ("a", "b", "c")
    all_nan = LabelledArray(np.full((2, 2), np.nan), ("step", "node")).mean("step")
    assert np.isnan(all_nan.values).all()
    np.testing.assert_allclose(a.norm().values, np.linalg.norm(a.values, axis=-1))
    assert a.mean().values.shape == () and float(a.sum().values) == a.values.sum()
    assert a.transpose("channel", "step", "node").shape == (4, 2, 3)


def test_json_writes_nan_as_null():
    j = LabelledArray(np.array([[1.0, np.nan]]), ("step", "node"), {"node": ("x", "y")}).to_json()
    assert j == {"dims": ["step", "node"], "coords": {"node": ["x", "y"]}, "values": [[1.0, None]]}


def test_shape_and_labels_are_checked():
    with pytest.raises(ValueError, match="2-d array with 1 axis names"):
        LabelledArray(np.zeros((2, 2)), ("step",))
    with pytest.raises(ValueError, match="3 labels for axis 'node' of length 2"):
        LabelledArray(np.zeros((2, 2)), ("step", "node"), {"node": ("a", "b", "c")})
