"""A partial report that checked nothing reads WARN with a note. fuzz3 found that Ctrl-C
before the first chunk completed gave a report reading PASS ('great'), passed=True and
raise_if_failed() silent, while its only block said 'warn' and the bound up to 100 %."""

import numpy as np

import fastcheck as fc


def test_partial_report_that_checked_nothing_does_not_pass():
    rng = np.random.default_rng(0)
    W0, x = rng.normal(size=(8, 6)), rng.normal(size=6)
    calls = [0]

    def cost(p, x):
        calls[0] += 1
        if calls[0] == 40:
            raise KeyboardInterrupt
        return float(np.sum(np.tanh(p["W"] @ x)))

    def grad(p, x):
        return {"W": np.outer(1 - np.tanh(p["W"] @ x) ** 2, x)}

    try:
        fc.check(cost, grad, {"W": W0}, (x,), backend="serial")
    except KeyboardInterrupt as exc:
        rep = exc.partial_report
    assert rep.n_checked == 0
    assert [b.verdict for b in rep.blocks] == ["warn"]
    assert rep.verdict != "pass"  # the blocks say warn; nothing was checked
    assert not rep.summary().startswith("fastcheck PASS")
