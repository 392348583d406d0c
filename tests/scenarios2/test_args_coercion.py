"""args=None means no extra arguments and a generator is unpacked like a list; a cost that
cannot take the args given fails with a message naming args. fuzz2 found both wrapped as
ONE positional argument, the error surfacing inside the user's cost as "c() takes 1
positional argument but 2 were given", naming neither args nor its value."""
import numpy as np
import pytest

import fastcheck as fc


def _cost(t):
    return 0.5 * float(t @ t)


def _grad(t):
    return t


@pytest.mark.parametrize("args", [None, (x for x in [1.0])], ids=["None", "generator"])
def test_odd_args_are_refused_or_normalised_naming_args(args):
    try:
        report = fc.check(_cost, _grad, np.ones(3), args=args)
    except (TypeError, ValueError) as exc:
        assert "args" in str(exc), str(exc)
    else:
        assert report.passed
