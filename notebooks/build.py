"""Write the tutorial notebooks from the cell sources below and execute them in place.

Run from the repository root with the project's virtual environment::

    .venv/bin/python notebooks/build.py          # all notebooks
    .venv/bin/python notebooks/build.py 02       # the ones whose name contains "02"

The executed notebooks (with outputs) are committed; ``tests/test_notebooks.py`` executes
them again in a fresh kernel so that they cannot rot.

A notebook that plots starts with ``%matplotlib inline``: ``report.plot()`` builds its
``Figure`` without pyplot, and only the inline backend, once activated, registers the
formatter that renders a ``Figure`` as a PNG (without it the cell shows
``<Figure size ... with 12 Axes>`` as text). ``tests/test_notebooks.py`` checks the images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

Cell = tuple[str, str]  # ("md" | "code", source)

QUICKSTART: list[Cell] = [
    ("md", """# 01 — Quickstart: checking hand-written backprop with fastcheck

We write a small network the way the classic deep-learning course does — parameters in a
dict `W1, b1, W2, b2`, a forward pass, a cost, and a backward pass returning `dW1, db1, …` —
and check its gradient with `fc.check`. Then we read every part of the report, and run the
same network as a numba `@njit` function on a flat vector, on the parallel backend."""),
    ("code", """import time

import numpy as np

import fastcheck as fc

rng = np.random.default_rng(0)
n_x, n_h, n_y, m = 10, 8, 3, 32
X = rng.normal(size=(n_x, m))
Y = np.eye(n_y)[:, rng.integers(0, n_y, m)]
params = {
    "W1": rng.normal(size=(n_h, n_x)) * np.sqrt(2 / n_x), "b1": np.zeros((n_h, 1)),
    "W2": rng.normal(size=(n_y, n_h)) * np.sqrt(2 / n_h), "b2": np.zeros((n_y, 1)),
}
lam = 0.7"""),
    ("code", """def forward(p, X):
    Z1 = p["W1"] @ X + p["b1"]
    A1 = np.maximum(Z1, 0)                      # ReLU
    Z2 = p["W2"] @ A1 + p["b2"]
    E = np.exp(Z2 - Z2.max(axis=0))
    return Z1, A1, E / E.sum(axis=0)            # softmax


def compute_cost(p, X, Y):
    m = X.shape[1]
    A2 = forward(p, X)[2]
    cross_entropy = -np.sum(Y * np.log(A2)) / m
    l2 = lam / (2 * m) * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
    return cross_entropy + l2                   # every term the gradient has


def backward(p, X, Y):
    m = X.shape[1]
    Z1, A1, A2 = forward(p, X)
    dZ2 = A2 - Y
    dW2 = dZ2 @ A1.T / m + lam / m * p["W2"]
    db2 = dZ2.sum(axis=1, keepdims=True) / m
    dA1 = p["W2"].T @ dZ2
    dZ1 = dA1 * (Z1 > 0)
    dW1 = dZ1 @ X.T / m + lam / m * p["W1"]
    db1 = dZ1.sum(axis=1, keepdims=True) / m
    return {"dW1": dW1, "db1": db1, "dW2": dW2, "db2": db2, "dZ1": dZ1, "dA1": dA1}"""),
    ("md", """`cost` receives a dict with the same names (views of the perturbed parameters); the
gradient dict may use the `d`-prefixed names of classic code, and keys that name no
parameter (`dZ1`, `dA1`) are ignored."""),
    ("code", """report = fc.check(compute_cost, backward, params, args=(X, Y))
print(report.summary())"""),
    ("md", """## Reading the report

* **The first line** — the verdict in Ng's terms. The relative error
  `‖a − n‖ / (‖a‖ + ‖n‖)` compares the analytic gradient `a` with the numeric one `n`:
  below 1e-7 is great, up to 1e-5 acceptable, above 1e-3 almost certainly a bug.
* **blocks** — one row per named block: how many components were checked, the block's
  relative error, its largest component error, failures, kinks, and how the component
  errors fall into Ng's bands.
* **worst components** — named like `W1[3, 7]`, with both gradients, the step and the error.
* **ran** — the backend, threads, number of cost evaluations (2 per component plus
  re-examinations of suspects), the time, and the step rule.

Every part is also an attribute:"""),
    ("code", """print(report.passed, report.verdict, f"{report.relative_error:.2e}")
print(report.n_params, report.n_checked, report.evaluations, report.backend)
for block in report.blocks:
    print(block.name, block.shape, block.n_checked, f"{block.relative_error:.1e}", block.verdict)
report.worst(3)"""),
    ("code", """report.stats["overall"]["bands"]"""),
    ("md", """In a notebook the report also renders as a table:"""),
    ("code", """report"""),
    ("md", """## The same network, fast: `@njit` on a flat vector

For speed, write the cost as a numba function of one flat float64 vector. A `fc.Layout`
names the blocks so the report still says `W1[3, 7]`; fastcheck then runs all 2N cost
evaluations inside one parallel numba kernel (one copy of θ per thread, perturbed and
restored in place)."""),
    ("code", """from numba import njit

layout = fc.Layout({name: value.shape for name, value in params.items()})
theta = layout.flatten(params)
XT = np.ascontiguousarray(X)
YT = np.ascontiguousarray(Y)


@njit(cache=True)
def flat_cost(theta, X, Y, lam):
    W1 = theta[0:80].reshape((8, 10))
    b1 = theta[80:88].reshape((8, 1))
    W2 = theta[88:112].reshape((3, 8))
    b2 = theta[112:115].reshape((3, 1))
    m = X.shape[1]
    A1 = np.maximum(W1 @ X + b1, 0.0)
    Z2 = W2 @ A1 + b2
    total = 0.0
    for j in range(m):
        z = Z2[:, j]
        zmax = z.max()
        log_norm = zmax + np.log(np.sum(np.exp(z - zmax)))
        total -= np.sum(Y[:, j] * (z - log_norm))
    return total / m + lam / (2 * m) * (np.sum(W1 ** 2) + np.sum(W2 ** 2))


def flat_grad(theta, X, Y, lam):
    return layout.flatten({k[1:]: v for k, v in backward(layout.unflatten(theta), X, Y).items()
                           if k[1:] in layout.names})


assert np.isclose(flat_cost(theta, XT, YT, lam), compute_cost(params, X, Y))"""),
    ("code", """fast = fc.check(flat_cost, flat_grad, theta, args=(XT, YT, lam), layout=layout)
print(fast.summary())"""),
    ("code", """slow = fc.check(compute_cost, backward, params, args=(X, Y), backend="serial")
print(f"plain numpy, serial loop: {slow.seconds * 1e3:7.1f} ms for {slow.evaluations} evaluations")
print(f"njit, numba kernel:       {fast.seconds * 1e3:7.1f} ms "
      f"(+ {fast.compile_seconds:.2f} s one-off compile), {fast.threads} threads")"""),
    ("md", """On a network this small (115 parameters, 2.5 µs per cost evaluation) both checks take
milliseconds, and fastcheck's fixed per-check work (planning, statistics, the report)
weighs as much as the evaluations: the kernel does not pay off yet. It does as N grows —
notebook 03 measures both backends up to N = 10,666, where the kernel is several times
faster, and `fastcheck bench --size M` compares it with the classic loop.

The numba kernel's compile time is paid once per cost function and process (and is
reported separately); the warm check is what you pay on every later call.

To use fastcheck inside your own tests, `fc.assert_gradient(compute_cost, backward, params,
args=(X, Y))` raises `fc.GradientCheckError` (an `AssertionError`) whose message is the
first lines of the summary."""),
]

FINDING_BUGS: list[Cell] = [
    ("md", """# 02 — Finding bugs: the practical notes of gradient checking, live

The built-in model `fastcheck.models.make_mlp` is a numba MLP (ReLU, softmax cross-entropy,
L2) with classic backprop bugs that can be injected by name. We use it to see how a bug is
located, why the cost must include the regularisation term, why dropout must be off, why
kinks are not bugs, and why to check again after some training."""),
    ("code", """%matplotlib inline
import numpy as np

import fastcheck as fc
from fastcheck.models import BUGS, make_mlp

for name, text in BUGS.items():
    print(f"{name:24} {text}")"""),
    ("md", """## A bug is located by its components

One wrong element of `dW2` in a network of 6,570 parameters: the report names the block,
the row and the column."""),
    ("code", """model = make_mlp("M", bug="one-element")
report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout)
print(report.short_summary())"""),
    ("code", """model = make_mlp("S", bug="transposed")
report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout)
print(report.short_summary(k=3))"""),
    ("md", """## The cost must include the regularisation term

If the gradient has the L2 term and the cost does not (or the other way round), every
weight block is off by a multiple of its own weights. The hint fits that multiple:
`c = −λ/m` when the term is missing from the gradient."""),
    ("code", """model = make_mlp("S", bug="missing-regularization")
report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout)
print(report.short_summary(k=3))
lam, m = model.args[3], model.args[0].shape[0]
print("expected c = -lam/m =", -lam / m)"""),
    ("code", """fig = report.plot()
fig"""),
    ("md", """## Dropout must be off

A cost that draws a new dropout mask on every call has no gradient to check. fastcheck
evaluates the cost twice at the same point first and refuses to go on:"""),
    ("code", """rng = np.random.default_rng()
w = np.linspace(-1, 1, 20)


def cost_with_dropout(w):
    keep = rng.random(w.shape) > 0.2            # a new mask on every call
    return float(np.sum((w * keep) ** 2) / 0.8)


try:
    fc.check(cost_with_dropout, 2 * w, w)
except fc.NondeterministicCostError as exc:
    print("NondeterministicCostError:", exc)"""),
    ("md", """The fix: turn dropout off for the check (or fix the mask once, outside the cost)."""),
    ("code", """keep = np.random.default_rng(0).random(w.shape) > 0.2


def cost_fixed_mask(w):
    return float(np.sum((w * keep) ** 2) / 0.8)


print(fc.check(cost_fixed_mask, 2 * w * keep / 0.8, w).headline())"""),
    ("md", """## Kinks are not bugs

ReLU, max and abs have kinks. When a finite-difference step straddles one, the quotient
mixes two slopes and a naive checker cries wolf. fastcheck re-examines every suspect at
smaller steps: if the left and right slopes stay apart, the component sits on a kink and
is reported as such, not as a failure."""),
    ("code", """theta = np.array([0.0, 1e-9, 2.0])


def cost(x):
    return abs(x[0]) + max(x[1], 0.0) + x[2] ** 2


def grad(x):
    return np.array([1.0, 1.0, 2 * x[2]])       # valid one-sided (sub)gradients


report = fc.check(cost, grad, theta)
print(report.summary())
print(list(report.kinds))"""),
    ("md", """## Check again after some training

A check at one point says the gradient is right *at that point*. At initialisation the
weights are small, units sit in their linear regime, and some bugs hide there. A classic
one: writing the derivative of `tanh` as `1 - z**2` (with the pre-activation `z`) instead
of `1 - a**2` (with the activation `a = tanh(z)`) — the two agree up to `z**4`, so at a
small initialisation the check passes. After some training (larger weights) it fails."""),
    ("code", """rng = np.random.default_rng(3)
X = rng.normal(size=(5, 16))
y = rng.normal(size=(1, 16))


def cost(p):
    a = np.tanh(p["W"] @ X)
    return float(np.sum((p["v"] @ a - y) ** 2) / (2 * X.shape[1]))


def grad(p):
    z = p["W"] @ X
    a = np.tanh(z)
    d_out = (p["v"] @ a - y) / X.shape[1]
    dz = (p["v"].T @ d_out) * (1 - z ** 2)     # BUG: should be (1 - a ** 2)
    return {"dW": dz @ X.T, "dv": d_out @ a.T}


init = {"W": rng.normal(size=(4, 5)) * 0.002, "v": rng.normal(size=(1, 4))}
trained = {"W": init["W"] * 500, "v": init["v"]}
print("at init:       ", fc.check(cost, grad, init).headline())
report = fc.check(cost, grad, trained)
print("after training:", report.headline())
print(report.failing_blocks())"""),
    ("code", """report.plot()"""),
]

LARGE: list[Cell] = [
    ("md", """# 03 — Large networks: sampling, confidence, adaptive checks, threads

A full check costs 2N cost evaluations. For a network with 109,386 parameters that is
218,772 forward passes. Most of the time a stratified random sample answers the question,
and the report says how sure it is about the components it did not check."""),
    ("code", """%matplotlib inline
import time

import numpy as np

import fastcheck as fc
from fastcheck.models import make_mlp

model = make_mlp("L")                    # [784, 128, 64, 10], N = 109,386
print(model.layout)"""),
    ("md", """## A 1% stratified sample

Every block gets at least one component (a bias vector of 10 entries is never skipped), the
rest in proportion to block size. The sample is reproducible: `report.seed`."""),
    ("code", """report = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
                  sample=0.01, seed=0)
print(report.summary())"""),
    ("md", """The confidence sentence is an exact (Clopper–Pearson) upper bound on the fraction of *all*
components that would fail (`report.failure_rate_bound`; per block on `report.blocks` and in
`report.stats["failure_rate_bound"]`), the quantile of `scipy.stats.beta`:"""),
    ("code", """from scipy import stats

k, n = len(report.failed), report.n_checked
print(report.failure_rate_bound, stats.beta.ppf(0.95, k + 1, n - k))"""),
    ("md", """## Adaptive sampling

`sample="auto"` keeps checking random chunks until a failure is confirmed or the bound on
the failure rate drops below `target_rate` (default 1e-3)."""),
    ("code", """ok = fc.check(model.cost, model.grad, model.theta, model.args, layout=model.layout,
              sample="auto", seed=1)
print(ok.n_checked, "components:", ok.stop_reason)

buggy = make_mlp("L", bug="bias-factor-2")
found = fc.check(buggy.cost, buggy.grad, buggy.theta, buggy.args, layout=buggy.layout,
                 sample="auto", seed=1)
print(found.n_checked, "components:", found.stop_reason)
print(found.short_summary(k=3))"""),
    ("md", """## Threads and speed

Time against N for the backends, measured here (small sizes, so that the notebook runs in
seconds): the numba kernel on the njit cost with 1 and all threads, and the serial loop on
the same network written in plain numpy."""),
    ("code", """from fastcheck.models import cost_python

rows = []
for sizes in [(20, 16, 8, 3), (32, 32, 16, 5), (64, 64, 32, 10), (128, 64, 32, 10)]:
    m = make_mlp(sizes)
    for label, kwargs, cost in [("numba, 1 thread", dict(backend="numba", threads=1), m.cost),
                                ("numba, all threads", dict(backend="numba"), m.cost),
                                ("serial, numpy cost", dict(backend="serial"), cost_python)]:
        r = fc.check(cost, m.grad, m.theta, m.args, layout=m.layout, **kwargs)
        rows.append((label, m.layout.size, r.seconds))
for row in rows:
    print(f"{row[0]:20} N={row[1]:6d}  {row[2] * 1e3:8.1f} ms")"""),
    ("code", """from matplotlib.figure import Figure

fig = Figure(figsize=(6, 4))
ax = fig.add_subplot()
for label in dict.fromkeys(r[0] for r in rows):
    pts = [(n, s) for lab, n, s in rows if lab == label]
    ax.loglog(*zip(*pts), marker="o", label=label)
ax.set_xlabel("N (parameters)")
ax.set_ylabel("seconds (warm)")
ax.legend()
fig"""),
]

LAYERS_NB: list[Cell] = [
    ("md", """# 04 — Checking one layer: `fc.check_layer`

Course code checks every layer on its own: `out, cache = conv_forward(x, w, b, conv_param)`,
`dx, dw, db = conv_backward(dout, cache)`, with a random upstream gradient `dout`.
`fc.check_layer` does exactly that as one call: it draws a seeded random `dout` for each
output, checks `J = Σ out · dout` component by component with `fc.check`, and reports one
block per input (`x`, `w`, `b`). Here: a naive convolution and an LSTM step (two outputs),
correct and with the bugs real code has, and a float32 layer."""),
    ("code", """import warnings

import numpy as np

import fastcheck as fc

rng = np.random.default_rng(0)


def conv_forward(x, w, b, conv_param):
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    f, _, hh, ww = w.shape
    ho, wo = (xp.shape[2] - hh) // s + 1, (xp.shape[3] - ww) // s + 1
    out = np.empty((x.shape[0], f, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * s:i * s + hh, j * s:j * s + ww]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, conv_param)


def conv_backward(dout, cache, crop="slice"):
    x, w, conv_param = cache
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    hh, ww = w.shape[2:]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = (slice(None), slice(None), slice(i * s, i * s + hh), slice(j * s, j * s + ww))
            dxp[win] += np.tensordot(dout[:, :, i, j], w, axes=(1, 0))
            dw += np.tensordot(dout[:, :, i, j], xp[win], axes=(0, 0))
    if crop == "negative":   # the classic slip: [p:-p] is empty when p == 0
        dx = dxp[:, :, p:-p, p:-p]
    else:
        dx = dxp[:, :, p:p + x.shape[2], p:p + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


conv_inputs = {"x": rng.normal(size=(2, 3, 5, 5)), "w": rng.normal(size=(4, 3, 3, 3)),
               "b": rng.normal(size=4)}
report = fc.check_layer(conv_forward, conv_backward, conv_inputs, ({"stride": 2, "pad": 1},),
                        seed=0)
print(report)"""),
    ("md", """`report.seed` reproduces `dout`
(`np.random.default_rng(seed).standard_normal(out.shape)`, one array per output, in order). Every option of `fc.check` applies: `sample=`, `method=`,
`backend=`…

A backward that crops its padding with `[p:-p]` returns an empty `dx` at `pad=0`. That is
not a crash deep inside numpy but an error that names the input and both shapes:"""),
    ("code", """try:
    fc.check_layer(conv_forward, lambda dout, cache: conv_backward(dout, cache, "negative"),
                   conv_inputs, ({"stride": 2, "pad": 0},), seed=0)
except ValueError as exc:
    print("ValueError:", exc)"""),
    ("md", """## An LSTM step: two outputs, and a backward that writes into its `dout`

`lstm_step_forward` returns `(next_h, next_c, cache)`, so `backward` is called as
`backward(dnext_h, dnext_c, cache)`. Like a lot of course code, this backward adds into
`dnext_c` in place: fastcheck hands it its own copy, so the `dout` of `J` is never changed."""),
    ("code", """def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    i, f, o, g = np.split(x @ Wx + prev_h @ Wh + b, 4, axis=1)
    i, f, o, g = sigmoid(i), sigmoid(f), sigmoid(o), np.tanh(g)
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c)


def lstm_step_backward(dnext_h, dnext_c, cache, forget_gate_bug=False):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, next_c = cache
    tc = np.tanh(next_c)
    dnext_c += dnext_h * o * (1 - tc**2)          # in place
    da = np.hstack([dnext_c * g * i * (1 - i), dnext_c * prev_c * f * (1 - f),
                    dnext_h * tc * o * (1 - o), dnext_c * i * (1 - g**2)])
    dprev_c = dnext_c if forget_gate_bug else dnext_c * f
    return da @ Wx.T, da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


N, D, H = 3, 4, 5
lstm_inputs = {"x": rng.normal(size=(N, D)), "prev_h": rng.normal(size=(N, H)),
               "prev_c": rng.normal(size=(N, H)), "Wx": rng.normal(size=(D, 4 * H)) / 2,
               "Wh": rng.normal(size=(H, 4 * H)) / 2, "b": rng.normal(size=4 * H)}
print(fc.check_layer(lstm_step_forward, lstm_step_backward, lstm_inputs, seed=1))"""),
    ("md", """With the forget gate left out of `dprev_c`, the report names the input whose
gradient is wrong — `prev_c` — and nothing else:"""),
    ("code", """buggy = fc.check_layer(lstm_step_forward,
                       lambda dh, dc, cache: lstm_step_backward(dh, dc, cache, True),
                       lstm_inputs, seed=1)
print(buggy.summary().splitlines()[0])
print([(b.name, b.n_failed) for b in buggy.blocks])"""),
    ("md", """## float32 layers

float32 inputs are not refused. When the layer follows its input's dtype (numpy code
does), fastcheck checks it in float64 on its own copy and says so. When the layer computes
in float32 whatever it is given, fastcheck measures the noise of `J` and derives the steps
and the verdict's floor from it. Either way a warning and a note mention float64, and the
caller's float32 arrays are never changed."""),
    ("code", """inputs32 = {k: v.astype(np.float32) for k, v in lstm_inputs.items()}


def lstm_step_forward32(*args):  # computes in float32, whatever it is given
    return lstm_step_forward(*(a.astype(np.float32) for a in args))


with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    follows = fc.check_layer(lstm_step_forward, lstm_step_backward, inputs32, seed=1)
    noisy = fc.check_layer(lstm_step_forward32, lstm_step_backward, inputs32, seed=1)
for r in (follows, noisy):
    print(r.summary().splitlines()[0])
    print("  note:", r.notes[0][:160], "...")
print(len(caught), "warnings;", "inputs still float32:",
      all(v.dtype == np.float32 for v in inputs32.values()))"""),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_finding_bugs.ipynb": FINDING_BUGS,
    "03_large_networks.ipynb": LARGE,
    "04_layers.ipynb": LAYERS_NB,
}


def make_notebook(cells: list[Cell]) -> nbformat.NotebookNode:
    """A notebook object from (kind, source) pairs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md"
                else nbformat.v4.new_code_cell(src) for kind, src in cells]
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 600) -> nbformat.NotebookNode:
    """Execute in a fresh kernel, raising on the first failing cell."""
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv: list[str]) -> int:
    wanted = argv[1:]
    for name, cells in NOTEBOOKS.items():
        if wanted and not any(w in name for w in wanted):
            continue
        start = __import__("time").perf_counter()
        nb = execute(make_notebook(cells))
        nbformat.write(nb, HERE / name)
        print(f"{name}: executed in {__import__('time').perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
