import numpy as np
import pytest

import fastcheck as fc


def test_layout_round_trip_and_views():
    layout = fc.Layout({"W1": (3, 2), "b1": (3,), "s": ()})
    assert layout.size == 10
    assert layout.names == ("W1", "b1", "s")
    assert layout.shapes == ((3, 2), (3,), ())
    assert layout.offsets == (0, 6, 9)
    assert layout.sizes == (6, 3, 1)
    params = {"W1": np.arange(6.0).reshape(3, 2), "b1": np.array([7.0, 8, 9]), "s": np.array(5.0)}
    theta = layout.flatten(params)
    assert theta.dtype == np.float64 and theta.shape == (10,)
    np.testing.assert_array_equal(theta, [0, 1, 2, 3, 4, 5, 7, 8, 9, 5])
    views = layout.unflatten(theta)
    views["W1"][1, 0] = 42.0  # a view: writes through
    assert theta[2] == 42.0
    assert params["W1"][1, 0] == 2.0  # flatten copied


def test_locate_c_order_and_bounds():
    layout = fc.Layout({"W1": (64, 20), "b1": (64,), "W2": (3, 64), "b2": (3,)})
    assert layout.locate(0) == ("W1", (0, 0))
    assert layout.locate(12 * 20 + 3) == ("W1", (12, 3))
    assert layout.locate(64 * 20) == ("b1", (0,))
    assert layout.locate(64 * 20 + 64 + 64 + 40) == ("W2", (1, 40))
    assert layout.label(64 * 20 + 64 + 64 + 40) == "W2[1, 40]"
    with pytest.raises(IndexError):
        layout.locate(layout.size)
    with pytest.raises(IndexError):
        layout.locate(-1)


def test_locate_skips_empty_blocks():
    layout = fc.Layout({"empty": (0, 3), "w": (2,)})
    assert layout.locate(0) == ("w", (0,))


def test_dict_and_layout_agree_on_every_index():
    params = {"a": np.arange(6.0).reshape(2, 3), "b": np.arange(4.0) + 10}
    layout = fc.Layout({k: v.shape for k, v in params.items()})
    theta = layout.flatten(params)
    for i in range(layout.size):
        name, idx = layout.locate(i)
        assert params[name][idx] == theta[i]


@pytest.mark.parametrize("bad", [{"a": (2, -1)}, {"a": "x"}, {1: (2,)}])
def test_bad_shapes_are_type_errors(bad):
    with pytest.raises(TypeError):
        fc.Layout(bad)


def test_flatten_shape_mismatch_names_block():
    layout = fc.Layout({"W": (2, 3)})
    with pytest.raises(ValueError, match="'W'"):
        layout.flatten({"W": np.zeros((3, 2))})


def test_names_shapes_offsets_sizes_are_parallel_tuples():
    layout = fc.Layout({"W1": (3, 2), "b1": (3,)})
    for attr in (layout.names, layout.shapes, layout.offsets, layout.sizes):
        assert isinstance(attr, tuple) and len(attr) == 2
    # iterating yields shapes / offsets / sizes, never names (API.md, Layout)
    assert list(layout.shapes) == [(3, 2), (3,)]
    assert list(layout.offsets) == [0, 6]
    assert list(layout.sizes) == [6, 3]
    assert layout.shapes[0] == layout.shape_of("W1") == (3, 2)
    assert layout.offsets[1] == layout.offset_of("b1") == 6
    assert layout.sizes[1] == layout.size_of("b1") == 3


def test_lookup_of_unknown_block_names_the_blocks():
    layout = fc.Layout({"W1": (3, 2), "b1": (3,)})
    with pytest.raises(KeyError, match="W9.*W1"):
        layout.shape_of("W9")
