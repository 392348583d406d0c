"""fc.check_layer on our own course-style layers: correct ones pass, each injected bug is
named by its input, and the traps of real layer code are handled."""

from __future__ import annotations

import copy
import pickle
import re
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.backends import BACKEND_NAMES
from fastcheck.layers import LayerCost
from tests import _layers as L
from tests._layers import CASES


def _inputs(name: str, seed: int = 0) -> dict:
    return CASES[name].make_inputs(np.random.default_rng(seed))


@pytest.mark.parametrize("name", sorted(CASES))
def test_correct_layer_passes(name):
    case = CASES[name]
    inputs = _inputs(name)
    report = fc.check_layer(case.forward, case.backward, inputs, case.args, seed=7,
                            backend="serial")
    assert report.passed, report.summary()
    floats = [k for k, v in inputs.items() if v.dtype.kind == "f"]
    assert [b.name for b in report.blocks] == floats
    assert report.n_checked == sum(inputs[k].size for k in floats)


@pytest.mark.parametrize("name", sorted(CASES))
def test_buggy_layer_fails_naming_its_input(name):
    case = CASES[name]
    report = fc.check_layer(case.forward, case.buggy(), _inputs(name), case.args, seed=7,
                            backend="serial")
    assert not report.passed
    failing = [b.name for b in report.blocks if b.n_failed]
    assert failing == [case.bug_input], report.summary()
    assert case.bug_input in report.summary()


def test_callers_arrays_and_args_are_never_changed():
    case = CASES["batchnorm"]
    inputs = _inputs("batchnorm")
    before = {k: v.copy() for k, v in inputs.items()}
    bn_param = {"eps": 1e-5, "momentum": 0.9}
    fc.check_layer(case.forward, case.backward, inputs, (bn_param,), seed=1)
    assert bn_param == {"eps": 1e-5, "momentum": 0.9}  # forward writes running stats
    for k in inputs:
        assert np.array_equal(inputs[k], before[k])


def test_seed_reproduces_dout_and_the_report():
    case = CASES["affine"]
    inputs = _inputs("affine")
    a = fc.check_layer(case.forward, case.backward, inputs, seed=None)
    b = fc.check_layer(case.forward, case.backward, inputs, seed=a.seed)
    assert a.seed == b.seed
    assert np.array_equal(a.numeric, b.numeric)
    # dout is default_rng(seed).standard_normal(out.shape): J's gradient wrt b is sum(dout)
    out, _ = case.forward(*inputs.values())
    dout = np.random.default_rng(a.seed).standard_normal(out.shape)
    db = a.analytic[a.indices >= a.n_params - 5]
    assert np.allclose(db, dout.sum(axis=0))


def test_backward_that_adds_into_dout_in_place_gets_its_own_copy():
    # lstm_step_backward does dnext_c += ...; if dout were shared with J, J would change
    case = CASES["lstm_step"]
    assert fc.check_layer(case.forward, case.backward, _inputs("lstm_step"), seed=3).passed

    def scribbling_backward(dout, cache):
        grads = L.affine_backward(dout, cache)
        dout *= 1000.0  # after use: must not reach the cost's dout
        return grads

    assert fc.check_layer(L.affine_forward, scribbling_backward, _inputs("affine"),
                          seed=3).passed


def test_plain_output_backward_gets_inputs_and_args():
    def scale_forward(x, w, alpha):
        return alpha * np.tanh(x * w)

    def scale_backward(dout, x, w, alpha):
        d = dout * alpha * (1 - np.tanh(x * w) ** 2)
        return {"dx": d * w, "dw": d * x}

    rng = np.random.default_rng(0)
    inputs = {"x": rng.normal(size=(3, 4)), "w": rng.normal(size=(3, 4))}
    report = fc.check_layer(scale_forward, scale_backward, inputs, (1.5,), seed=0)
    assert report.passed and [b.name for b in report.blocks] == ["x", "w"]

    def wrong_backward(dout, x, w, alpha):
        d = dout * alpha * (1 - np.tanh(x * w) ** 2)
        return {"x": d * w, "w": d * w}

    bad = fc.check_layer(scale_forward, wrong_backward, inputs, (1.5,), seed=0)
    assert [b.name for b in bad.blocks if b.n_failed] == ["w"]


def test_integer_argument_between_arrays_and_param_dict():
    case = CASES["spatial_groupnorm"]
    assert isinstance(case.args[0], int)
    report = fc.check_layer(case.forward, case.backward, _inputs("spatial_groupnorm"),
                            case.args, seed=0)
    assert report.passed


def test_integer_input_is_passed_in_place_not_checked():
    case = CASES["word_embedding"]
    inputs = _inputs("word_embedding")
    report = fc.check_layer(case.forward, case.backward, inputs, seed=0)
    assert [b.name for b in report.blocks] == ["W"] and report.n_params == inputs["W"].size
    # a backward with a slot for the integer input too (None) is accepted
    report2 = fc.check_layer(case.forward, lambda d, c: (None, case.backward(d, c)), inputs,
                             seed=0)
    assert report2.passed


def test_gradient_of_the_wrong_shape_names_the_input_and_both_shapes():
    case = CASES["conv_pad0"]
    backward = partial(L.conv_backward_naive, crop="negative")
    with pytest.raises(ValueError, match=r"dx has shape \(2, 3, 0, 0\) but x has shape "
                                         r"\(2, 3, 5, 5\)"):
        fc.check_layer(case.forward, backward, _inputs("conv_pad0"), case.args, seed=0)
    # the same crop is right at pad 1
    case1 = CASES["conv_pad1"]
    assert fc.check_layer(case1.forward, backward, _inputs("conv_pad1"), case1.args,
                          seed=0).passed


def test_dropout_without_a_seed_is_refused():
    case = CASES["dropout"]
    with pytest.raises(fc.NondeterministicCostError, match="dropout"):
        fc.check_layer(case.forward, case.backward, _inputs("dropout"), ({"p": 0.7},),
                       seed=0)


def test_wrong_number_of_gradients_names_the_inputs():
    def two_only(dout, cache):
        return L.affine_backward(dout, cache)[:2]

    with pytest.raises(ValueError, match=r"2 gradient\(s\).*3 floating-point input"):
        fc.check_layer(L.affine_forward, two_only, _inputs("affine"), seed=0)
    with pytest.raises(ValueError, match="'b'"):
        fc.check_layer(L.affine_forward, lambda d, c: {"dx": 0, "dw": 0}, _inputs("affine"),
                       seed=0)


@pytest.mark.parametrize("result, match", [
    (None, "forward returned NoneType"),
    ((np.ones(3),), "tuple of length 1"),
    (({"cache": 1}, None), "must be a numpy array, got dict"),
    ((np.arange(3), None), "must be a float array"),
    ((1.5, np.ones(3)), r"got float \(a loss that returns \(loss, dx\) is checked with "
                        r"fc.check\(..., grad=True\)\)"),
])
def test_missing_or_malformed_output_is_a_clear_error(result, match):
    with pytest.raises(TypeError, match=match):
        fc.check_layer(lambda x: result, lambda d, c: d, {"x": np.ones(3)}, seed=0)


def test_non_array_input_and_other_bad_input_name_the_argument():
    with pytest.raises(TypeError, match=r"inputs\['x'\] must be a numpy array, got list"):
        fc.check_layer(L.relu_forward, L.relu_backward, {"x": [1.0, -2.0]})
    with pytest.raises(TypeError, match="inputs must be a mapping"):
        fc.check_layer(L.relu_forward, L.relu_backward, np.ones(3))
    with pytest.raises(ValueError, match="no floating-point array"):
        fc.check_layer(L.word_embedding_forward, L.word_embedding_backward,
                       {"x": np.array([0, 1])})
    with pytest.raises(TypeError, match="backward must be callable"):
        fc.check_layer(L.relu_forward, None, {"x": np.ones(3)})
    with pytest.raises(TypeError, match="layout="):
        fc.check_layer(L.relu_forward, L.relu_backward, {"x": np.ones(3)},
                       layout=fc.Layout({"x": (3,)}))
    with pytest.raises(TypeError, match="backward returned str; expected the gradients"):
        fc.check_layer(L.relu_forward, lambda d, c: "oops", {"x": np.ones(3)})
    with pytest.raises(TypeError, match="dx returned by backward must be a float array, "
                                        "got str"):
        fc.check_layer(L.relu_forward, lambda d, c: ("oops",), {"x": np.ones(3)})


def test_check_options_apply():
    case = CASES["conv_pad1"]
    inputs = _inputs("conv_pad1")
    sampled = fc.check_layer(case.forward, case.buggy(), inputs, case.args, seed=2,
                             sample=40)
    assert sampled.n_checked == 40 and not sampled.passed
    assert {b.name for b in sampled.blocks if b.n_failed} == {"w"}
    rich = fc.check_layer(case.forward, case.backward, inputs, case.args, seed=2,
                          method="richardson", backend="threads", threads=2)
    assert rich.passed and rich.method == "richardson" and rich.backend == "threads"


def test_layer_cost_pickles_for_worker_processes():
    case = CASES["lstm_step"]
    inputs = _inputs("lstm_step")
    douts = (np.ones((3, 3)), np.ones((3, 3)))
    cost = LayerCost(case.forward, tuple(inputs), {}, (), douts, True)
    clone = pickle.loads(pickle.dumps(cost))
    assert clone(copy.deepcopy(inputs)) == cost(inputs)


def test_complex_step_reaches_the_layer():
    case = CASES["lstm_step"]
    inputs = _inputs("lstm_step")
    report = fc.check_layer(case.forward, case.backward, inputs, seed=0, method="complex")
    assert report.passed and report.method == "complex" and report.relative_error < 1e-14
    bad = fc.check_layer(case.forward, case.buggy(), inputs, seed=0, method="complex")
    assert [b.name for b in bad.blocks if b.n_failed] == ["prev_c"]


@pytest.mark.skipif("processes" not in BACKEND_NAMES, reason="backend='processes' not built")
def test_processes_backend_gives_the_serial_numbers():
    case = CASES["lstm_step"]
    inputs = _inputs("lstm_step")
    serial = fc.check_layer(case.forward, case.backward, inputs, seed=0, backend="serial")
    procs = fc.check_layer(case.forward, case.backward, inputs, seed=0, backend="processes",
                           threads=2)
    assert procs.backend == "processes" and procs.passed
    assert np.array_equal(procs.numeric, serial.numeric)
    bad = fc.check_layer(case.forward, case.buggy(), inputs, seed=0, backend="processes",
                         threads=2)
    assert [b.name for b in bad.blocks if b.n_failed] == ["prev_c"]


def test_the_python_examples_of_docs_layers_run():
    text = (Path(__file__).resolve().parent.parent / "docs" / "layers.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {"__name__": "docs_layers"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for block in blocks:
            exec(compile(block, "docs/layers.md", "exec"), namespace)  # noqa: S102
    assert namespace["report"].passed


def test_backward_mapping_with_both_x_and_dx_is_refused_unless_they_agree():
    """A backward that returns its cache (inputs *and* gradients) in one mapping: taking
    ``x`` would check the input as if it were the gradient."""
    def tanh_forward(x, w):
        return np.tanh(x * w)

    def backward(dout, x, w, *, extra):
        d = dout * (1 - np.tanh(x * w) ** 2)
        return {"dx": d * w, "dw": d * x, **extra(x, w, d)}

    rng = np.random.default_rng(1)
    inputs = {"x": rng.normal(size=(3, 4)), "w": rng.normal(size=(3, 4))}
    with pytest.raises(ValueError, match=r"holds both 'x' and 'dx'.*ambiguous"):
        fc.check_layer(tanh_forward, lambda dout, x, w: backward(
            dout, x, w, extra=lambda x, w, d: {"x": x}), inputs, seed=0)
    same = fc.check_layer(tanh_forward, lambda dout, x, w: backward(
        dout, x, w, extra=lambda x, w, d: {"x": d * w}), inputs, seed=0)
    assert same.passed
