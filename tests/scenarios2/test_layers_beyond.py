"""check_layer on layers that tests/_layers.py does not have: attention, strided padded
conv, transposed conv, upsampling, embedding with repeated indices, max over time, a
residual block, a gated unit with two outputs. Every backward form API.md allows appears
(tuple, mapping keyed ``dx`` or ``x``, single array, several outputs, output-only
forward). Each correct layer passes; each with its realistic bug fails, naming the input."""
import functools

import numpy as np
import pytest

import fastcheck as fc
from tests.scenarios2._layers2 import cases

NAMES = sorted(cases(np.random.default_rng(0)))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_correct_layer_passes_and_its_bug_fails_naming_the_input(name, seed):
    forward, backward, inputs, args, bug_input = cases(np.random.default_rng(seed))[name]
    kept = {k: v.copy() for k, v in inputs.items()}
    good = fc.check_layer(forward, backward, inputs, args, seed=seed)
    assert good.passed, good.summary()
    checked = [k for k, v in inputs.items() if np.issubdtype(v.dtype, np.floating)]
    assert [b.name for b in good.blocks] == checked
    bad = fc.check_layer(forward, functools.partial(backward, bug=True), inputs, args,
                         seed=seed)
    assert not bad.passed
    failing = [b.name for b in bad.blocks if b.verdict == "fail"]
    assert bug_input in failing, bad.summary()
    assert bug_input in bad.summary().splitlines()[1]  # "failing blocks: ..."
    for k in inputs:
        np.testing.assert_array_equal(inputs[k], kept[k])


def test_embedding_integer_indices_are_not_a_block_and_repeats_are_summed():
    forward, backward, inputs, args, _ = cases(np.random.default_rng(3))["embedding_repeats"]
    report = fc.check_layer(forward, backward, inputs, args, seed=3)
    assert [b.name for b in report.blocks] == ["W"]
    assert report.n_params == inputs["W"].size
    bad = fc.check_layer(forward, functools.partial(backward, bug=True), inputs, args, seed=3)
    # the wrong rows are exactly those whose index repeats (0 and 2)
    rows = {fc.Layout({"W": inputs["W"].shape}).locate(int(i))[1][0] for i in bad.failed}
    assert rows == {0, 2}


def test_backward_as_a_list_and_mapping_with_unrelated_keys():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    as_list = fc.check_layer(lambda x, w: x @ w, lambda d, x, w: [d @ w.T, x.T @ d],
                             {"x": x, "w": w})
    assert as_list.passed
    extra = fc.check_layer(lambda x, w: x @ w,
                           lambda d, x, w: {"dx": d @ w.T, "dw": x.T @ d, "dcache": 1},
                           {"x": x, "w": w})
    assert extra.passed
    wrong = fc.check_layer(lambda x, w: x @ w,
                           lambda d, x, w: {"dx": d @ w.T, "dw": 2 * x.T @ d, "dcache": 1},
                           {"x": x, "w": w})
    assert [b.name for b in wrong.blocks if b.verdict == "fail"] == ["w"]


@pytest.mark.parametrize("options", [{"mode": "directional"}, {"method": "richardson"},
                                     {"sample": 0.5, "seed": 4}])
def test_layer_bugs_are_found_under_other_options(options):
    for name in ("attention", "residual", "upsample"):
        forward, backward, inputs, args, bug_input = cases(np.random.default_rng(5))[name]
        assert fc.check_layer(forward, backward, inputs, args, **options).passed
        bad = fc.check_layer(forward, functools.partial(backward, bug=True), inputs, args,
                             **options)
        assert bug_input in [b.name for b in bad.blocks if b.verdict == "fail"], name


def test_layer_bad_gradients_name_the_input():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    with pytest.raises(ValueError, match=r"dw has shape \(2, 4\) but w has shape \(4, 2\)"):
        fc.check_layer(lambda x, w: x @ w, lambda d, x, w: (d @ w.T, (x.T @ d).T),
                       {"x": x, "w": w})
    with pytest.raises(ValueError, match="'w'"):
        fc.check_layer(lambda x, w: x @ w, lambda d, x, w: {"dx": d @ w.T},
                       {"x": x, "w": w})
    with pytest.raises(TypeError, match="dx.*complex128"):
        fc.check_layer(lambda x: 2 * x, lambda d, x: 2 * d + 0j, {"x": x})
    with pytest.raises(TypeError, match="generator"):
        fc.check_layer(lambda x: 2 * x, lambda d, x: (g for g in [2 * d]), {"x": x})
    with pytest.raises(ValueError, match="finite"):
        fc.check_layer(lambda x: 2 * x, lambda d, x: 2 * d, {"x": np.array([1.0, np.nan])})
