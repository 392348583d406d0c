"""Heavy dependencies on first use: ``import fastcheck`` loads numpy and nothing heavier.

numba takes ~0.25 s to import and is needed only for a cost that is a numba dispatcher or
for ``backend="numba"``. A function can only be a numba dispatcher when numba has been
imported (by whoever jitted it), so the questions below are answered without importing
numba when it is not loaded yet.
"""

from __future__ import annotations

import sys
from typing import Any


def is_jitted(fn: Any) -> bool:
    """True when ``fn`` is a numba dispatcher (``@njit``), without importing numba.

    Parameters
    ----------
    fn : object
        Any object, typically the user's cost or gradient.

    Returns
    -------
    bool
        False whenever numba is not imported: then nothing can have been jitted.
    """
    if "numba" not in sys.modules:
        return False
    from numba.extending import is_jitted as numba_is_jitted

    return bool(numba_is_jitted(fn))


def numba_errors() -> tuple[type[BaseException], ...]:
    """The classes to catch as numba's errors: ``(NumbaError,)``, or ``()`` without numba.

    For ``except numba_errors() as exc:``; an empty tuple catches nothing, which is right
    when numba is not loaded (no call can then raise one of its errors).
    """
    if "numba" not in sys.modules:
        return ()
    from numba.core.errors import NumbaError

    return (NumbaError,)
