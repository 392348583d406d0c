"""fc.bind_params on the classic shapes of public backprop code.

Three tiny versions of code people actually write: an assignment-style model with
``model.params`` and ``loss(X, y) -> (loss, grads)``; a Nielsen-style ``Network`` with
``weights``/``biases`` lists and ``backprop(x, y) -> (nabla_b, nabla_w)``; and the
character-level RNN whose parameters are module globals and whose ``lossFun`` returns
``(loss, dWxh, dWhh, dWhy, dbh, dby, hs)``.
"""

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import fastcheck as fc
from fastcheck.binding import Binding, bind_params

ROOT = Path(__file__).resolve().parent.parent


# -- 1. assignment style: model.params dict, loss(X, y) -> (loss, grads) -------------------
class TwoLayerNet:
    def __init__(self, bug=None, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W1": rng.standard_normal((4, 6)) * 0.5, "b1": rng.standard_normal(6),
                       "W2": rng.standard_normal((6, 3)) * 0.5, "b2": np.zeros(3)}
        self.reg = 0.1
        self.bug = bug

    def loss(self, X, y):
        p = self.params
        z = X @ p["W1"] + p["b1"]
        h = np.tanh(z)
        s = h @ p["W2"] + p["b2"]
        e = np.exp(s - s.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        n = X.shape[0]
        loss = -np.log(probs[np.arange(n), y]).mean() \
            + 0.5 * self.reg * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
        ds = probs.copy()
        ds[np.arange(n), y] -= 1
        ds /= n
        dz = (ds @ p["W2"].T) * (1 - h ** 2)
        grads = {"W1": X.T @ dz + self.reg * p["W1"], "b1": dz.sum(axis=0),
                 "W2": h.T @ ds + self.reg * p["W2"], "b2": ds.sum(axis=0)}
        if self.bug == "W2-no-reg":
            grads["W2"] = h.T @ ds
        return loss, grads


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((7, 4)), rng.integers(0, 3, size=7)


def _snapshot(arrays):
    return [(a, a.copy()) for a in arrays]


def _assert_restored(current, snapshot):
    assert len(current) == len(snapshot)
    for arr, (orig, values) in zip(current, snapshot):
        assert arr is orig
        np.testing.assert_array_equal(arr, values)


def test_params_dict_model_passes_and_is_restored(data):
    model = TwoLayerNet()
    params_dict = model.params
    snap = _snapshot(model.params.values())
    b = bind_params(model, "params", model.loss, grad=True)
    assert isinstance(b, Binding) and b.names == ("W1", "b1", "W2", "b2")
    report = fc.check(b.cost, b.grad, b.params, data)
    assert report.passed, report.summary()
    assert report.backend == "serial"  # auto: a Python callable on a shared object
    assert [blk.name for blk in report.blocks] == ["W1", "b1", "W2", "b2"]
    assert model.params is params_dict
    _assert_restored(list(model.params.values()), snap)


def test_params_dict_bug_names_the_block(data):
    model = TwoLayerNet(bug="W2-no-reg")
    snap = _snapshot(model.params.values())
    b = bind_params(model, "params", model.loss, grad=True)
    report = fc.check(b.cost, b.grad, b.params, data)
    assert not report.passed
    assert report.failing_blocks() == ["W2"]
    _assert_restored(list(model.params.values()), snap)


# -- 2. Nielsen style: net.weights / net.biases lists, backprop(x, y) -> (nabla_b, nabla_w) -
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Network:
    def __init__(self, sizes, bug=False, seed=0):
        rng = np.random.default_rng(seed)
        self.num_layers = len(sizes)
        self.biases = [rng.standard_normal((y, 1)) for y in sizes[1:]]
        self.weights = [rng.standard_normal((y, x)) for x, y in zip(sizes[:-1], sizes[1:])]
        self.bug = bug

    def feedforward(self, a):
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(w @ a + b)
        return a

    def backprop(self, x, y):
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        activation, activations, zs = x, [x], []
        for b, w in zip(self.biases, self.weights):
            z = w @ activation + b
            zs.append(z)
            activation = sigmoid(z)
            activations.append(activation)
        delta = (activations[-1] - y) * sigmoid(zs[-1]) * (1 - sigmoid(zs[-1]))
        nabla_b[-1] = delta * (2.0 if self.bug else 1.0)  # the bug: a stray factor
        nabla_w[-1] = delta @ activations[-2].T
        for layer in range(2, self.num_layers):
            sp = sigmoid(zs[-layer]) * (1 - sigmoid(zs[-layer]))
            delta = (self.weights[-layer + 1].T @ delta) * sp
            nabla_b[-layer] = delta
            nabla_w[-layer] = delta @ activations[-layer - 1].T
        return nabla_b, nabla_w


def _nielsen(net):
    x = np.linspace(-1, 1, 3).reshape(3, 1)
    y = np.array([[0.0], [1.0]])
    b = bind_params(net, ["biases", "weights"],
                    lambda x, y: 0.5 * float(np.sum((net.feedforward(x) - y) ** 2)),
                    grad=net.backprop)
    return b, (x, y)


def test_nielsen_lists_pass_and_are_restored():
    net = Network([3, 4, 2])
    weights, biases = net.weights, net.biases
    snap = _snapshot(net.biases + net.weights)
    b, args = _nielsen(net)
    assert b.names == ("biases[0]", "biases[1]", "weights[0]", "weights[1]")
    report = fc.check(b.cost, b.grad, b.params, args)
    assert report.passed, report.summary()
    assert net.weights is weights and net.biases is biases
    _assert_restored(net.biases + net.weights, snap)


def test_nielsen_bug_names_the_list_entry():
    net = Network([3, 4, 2], bug=True)
    b, args = _nielsen(net)
    report = fc.check(b.cost, b.grad, b.params, args)
    assert report.failing_blocks() == ["biases[1]"]
    assert "biases[1][" in report.summary()


def test_nielsen_where_in_the_wrong_order_says_so():
    net = Network([3, 4, 2])
    x, y = np.ones((3, 1)), np.zeros((2, 1))
    b = bind_params(net, ["weights", "biases"], lambda x, y: 0.0, grad=net.backprop)
    with pytest.raises(ValueError, match=r"order of where=\['weights', 'biases'\]"):
        fc.check(b.cost, b.grad, b.params, (x, y))


# -- 3. the character-level RNN: module globals, lossFun returns a 7-tuple -----------------
MIN_CHAR_RNN = '''
import numpy as np
hidden_size, vocab_size = 5, 4
rng = np.random.default_rng(0)
Wxh = rng.standard_normal((hidden_size, vocab_size)) * 0.3
Whh = rng.standard_normal((hidden_size, hidden_size)) * 0.3
Why = rng.standard_normal((vocab_size, hidden_size)) * 0.3
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))
BUG = False

def lossFun(inputs, targets, hprev):
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t-1]) + bh)
        ys[t] = np.dot(Why, hs[t]) + by
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, (hs[t] if BUG else hs[t-1]).T)
        dhnext = np.dot(Whh.T, dhraw)
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -5, 5, out=dparam)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs)-1]
'''
RNN_PARAMS = ["Wxh", "Whh", "Why", "bh", "by"]


def _rnn_module(bug=False):
    module = types.ModuleType("min_char_rnn")
    exec(MIN_CHAR_RNN, module.__dict__)
    module.BUG = bug
    return module


def _rnn_args():
    return [0, 2, 1, 3], [2, 1, 3, 0], np.full((5, 1), 0.1)


def test_char_rnn_module_globals_pass_and_are_restored():
    rnn = _rnn_module()
    snap = _snapshot([getattr(rnn, n) for n in RNN_PARAMS])
    b = bind_params(rnn, RNN_PARAMS, rnn.lossFun, grad=True)
    report = fc.check(b.cost, b.grad, b.params, _rnn_args())
    assert report.passed, report.summary()
    assert [blk.name for blk in report.blocks] == RNN_PARAMS
    _assert_restored([getattr(rnn, n) for n in RNN_PARAMS], snap)


def test_char_rnn_bug_names_whh():
    rnn = _rnn_module(bug=True)
    b = bind_params(rnn, RNN_PARAMS, rnn.lossFun, grad=True)
    report = fc.check(b.cost, b.grad, b.params, _rnn_args())
    assert report.failing_blocks() == ["Whh"]


# -- restoring on errors -------------------------------------------------------------------
class Exploding(TwoLayerNet):
    """Raises on the ``n``-th call of ``loss``."""

    def __init__(self, n, exc):
        super().__init__()
        self.calls, self.n, self.exc = 0, n, exc
        self.own_W1 = self.params["W1"]

    def loss(self, X, y):
        self.calls += 1
        if self.calls == self.n:
            assert self.params["W1"] is not self.own_W1  # fastcheck's arrays are installed
            raise self.exc
        return super().loss(X, y)


@pytest.mark.parametrize("n, exc, expected", [
    (1, RuntimeError("at theta"), RuntimeError),
    (9, RuntimeError("at a perturbed point"), fc.CostEvaluationError),
    (9, KeyboardInterrupt(), KeyboardInterrupt),
], ids=["at-theta", "perturbed", "ctrl-c"])
def test_object_restored_after_an_exception(data, n, exc, expected):
    model = Exploding(n, exc)
    snap = _snapshot(model.params.values())
    b = bind_params(model, "params", model.loss, grad=True)
    with pytest.raises(expected):
        fc.check(b.cost, b.grad, b.params, data)
    assert model.calls == n
    _assert_restored(list(model.params.values()), snap)


def test_restored_even_if_the_code_swaps_the_container(data):
    class Swapper(TwoLayerNet):
        def loss(self, X, y):
            out = super().loss(X, y)
            self.params = dict(self.params)  # rebinds the attribute
            return out

    model = Swapper()
    params_dict = model.params
    snap = _snapshot(model.params.values())
    b = bind_params(model, "params", model.loss, grad=True)
    assert fc.check(b.cost, b.grad, b.params, data).passed  # restored after every call
    assert model.params is params_dict
    _assert_restored(list(model.params.values()), snap)


# -- other holders: array attributes, dotted paths, tuples ---------------------------------
class Layer:
    def __init__(self, rng):
        self.W = rng.standard_normal((3, 2))


class Holder:
    def __init__(self):
        rng = np.random.default_rng(5)
        self.fc1 = Layer(rng)
        self.b1 = rng.standard_normal(2)
        self.extra = (rng.standard_normal(2), rng.standard_normal(2))

    def cost(self, x):
        h = np.tanh(x @ self.fc1.W + self.b1)
        return float(np.sum(h * self.extra[0] * self.extra[1]))

    def grads(self, x):
        h = np.tanh(x @ self.fc1.W + self.b1)
        dh = self.extra[0] * self.extra[1]
        dz = dh * (1 - h ** 2)
        return {"fc1.W": np.outer(x, dz), "db1": dz,
                "extra[0]": h * self.extra[1], "extra[1]": h * self.extra[0]}


def test_array_attributes_dotted_paths_and_tuples():
    obj = Holder()
    x = np.array([0.3, -0.2, 0.5])
    tup, W, b1 = obj.extra, obj.fc1.W, obj.b1
    snap = _snapshot([W, b1, *tup])
    b = bind_params(obj, ["fc1.W", "b1", "extra"], obj.cost, grad=obj.grads)
    assert b.names == ("fc1.W", "b1", "extra[0]", "extra[1]")
    report = fc.check(b.cost, b.grad, b.params, (x,))
    assert report.passed, report.summary()
    assert obj.extra is tup
    _assert_restored([obj.fc1.W, obj.b1, *obj.extra], snap)


def test_threads_backend_is_correct_under_the_lock(data):
    model = TwoLayerNet()
    b = bind_params(model, "params", model.loss, grad=True)
    report = fc.check(b.cost, b.grad, b.params, data, backend="threads", threads=4)
    assert report.passed and report.backend == "threads"


def test_named_maps_a_precomputed_gradient():
    net = Network([3, 4, 2])
    b = bind_params(net, ["biases", "weights"], lambda x, y: 0.0, grad=net.backprop)
    nabla_b, nabla_w = net.backprop(np.ones((3, 1)), np.zeros((2, 1)))
    named = b.named((nabla_b, nabla_w))
    assert list(named) == ["biases[0]", "biases[1]", "weights[0]", "weights[1]"]
    assert named["weights[1]"] is nabla_w[1]


# -- bad input -----------------------------------------------------------------------------
class Frozen:
    @property
    def W(self):
        return np.ones(2)


@pytest.mark.parametrize("obj, where, grad, exc, match", [
    (TwoLayerNet(), "parms", True, AttributeError, r"TwoLayerNet.parms does not exist"),
    (TwoLayerNet(), [], True, ValueError, "at least one attribute"),
    (TwoLayerNet(), "reg", True, TypeError, r"TwoLayerNet.reg must be a float64 array"),
    (TwoLayerNet(), "params", None, TypeError, "grad must be True"),
    (Frozen(), "W", True, TypeError, r"cannot set Frozen.W"),
    (types.SimpleNamespace(W=np.ones(2, np.float16)), "W", True, TypeError,
     r"SimpleNamespace.W has dtype float16"),
    (types.SimpleNamespace(p={"W": np.ones(2)}, q={"W": np.ones(2)}), ["p", "q"], True,
     ValueError, "two bound parameters are named 'W'"),
], ids=["missing", "empty", "not-array", "grad-none", "read-only", "float16", "duplicate"])
def test_bad_bindings_say_what_is_wrong(obj, where, grad, exc, match):
    with pytest.raises(exc, match=match):
        bind_params(obj, where, lambda: 0.0, grad=grad)


def test_grad_true_needs_a_tuple(data):
    model = TwoLayerNet()
    b = bind_params(model, "params", lambda X, y: model.loss(X, y)[0], grad=True)
    with pytest.raises(TypeError, match=r"must return \(loss, grads\)"):
        fc.check(b.cost, b.grad, b.params, data)


def test_example_script_runs():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "object_model.py")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout and "failing blocks: b1" in proc.stdout
    assert "the model holds its own arrays: True" in proc.stdout


def test_float32_parameters_on_an_object_are_checked_and_left_float32(data):
    """API.md: float32 parameters are not refused; the object's arrays are never changed."""
    class Model:
        def __init__(self):
            self.params = {"W": np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)}

        def loss(self, x):
            W = self.params["W"]
            return float(np.sum(np.tanh(W @ x))), {"W": np.outer(1 - np.tanh(W @ x) ** 2, x)}

    model = Model()
    original = model.params["W"]
    before = original.copy()
    b = bind_params(model, "params", model.loss, grad=True)
    with pytest.warns(UserWarning, match="float64"):
        report = fc.check(b.cost, b.grad, b.params, (np.array([0.3, -0.7]),))
    assert report.passed
    assert model.params["W"] is original and original.dtype == np.float32
    assert np.array_equal(original, before)
