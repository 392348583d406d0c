"""One BLAS thread while fastcheck evaluates a jitted cost.

numba's ``np.dot`` calls SciPy's OpenBLAS. Inside the parallel kernel every numba thread
calls BLAS; a multi-threaded BLAS there would oversubscribe the cores (2 numba threads x 2
BLAS threads ran slower than 1 thread). Measured here, a second effect matters as much:
after a numba parallel kernel has run, the first multi-threaded OpenBLAS call from the
main thread costs 20-60 ms (OpenBLAS re-engages its thread pool), so evaluating the cost
and gradient at theta with BLAS uncapped *between* kernels added ~0.2 s to every check of
the L network. fastcheck therefore keeps BLAS at one thread over all its evaluations of a
jitted cost, and restores the caller's setting afterwards, also on error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


def _load_numba_blas() -> None:
    """Load the BLAS library numba calls, so that the cap reaches it.

    numba loads SciPy's OpenBLAS (through ``scipy.linalg.cython_blas``) when the first
    function using ``np.dot`` is compiled; a cap applied before that would miss it.
    """
    with contextlib.suppress(ImportError):  # pragma: no cover - scipy is a dependency
        import scipy.linalg.cython_blas  # noqa: F401


_controller: list = []  # the ThreadpoolController, built once (finding the libraries: ~2 ms)


def _blas_controller():
    """A threadpoolctl controller of the BLAS libraries loaded, numba's included."""
    if not _controller:
        _load_numba_blas()
        from threadpoolctl import ThreadpoolController

        _controller.append(ThreadpoolController().select(user_api="blas"))
    return _controller[0]


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit the BLAS libraries (numba's among them) to one thread for the block.

    Asks each library for its thread count and sets only those not at one, restoring the
    same ones after. Not ``controller.limit()``: that builds the ``info()`` dict of every
    library on each call, ~0.1 ms, paid twice by every check.
    """
    changed = []
    try:
        for lib in _blas_controller().lib_controllers:
            n = lib.get_num_threads()
            if n is not None and n != 1:
                lib.set_num_threads(1)
                changed.append((lib, n))
        yield
    finally:
        for lib, n in reversed(changed):
            lib.set_num_threads(n)
