"""Backends: one module each, chosen from one table."""

from __future__ import annotations

from numba.extending import is_jitted

from .numba_backend import NumbaBackend
from .serial import SerialBackend
from .threads import ThreadsBackend

BACKENDS = {
    "numba": NumbaBackend,
    "threads": ThreadsBackend,
    "serial": SerialBackend,
}

#: Values accepted by ``fc.check(backend=...)``.
BACKEND_NAMES = ("auto", *BACKENDS)


def resolve_backend(name: str, problem) -> str:
    """The backend that ``name`` means for this problem (``auto``: numba for an
    ``@njit`` cost on a flat vector, serial otherwise — never threads, since Python
    costs are often not thread-safe)."""
    if name != "auto":
        return name
    if is_jitted(problem.cost) and problem.params_kind == "flat" \
            and not problem.cost_returns_grad:
        return "numba"
    return "serial"


def create_backend(name: str, problem, threads: int | None):
    """Instantiate the backend ``name`` (already resolved) for ``problem``."""
    return BACKENDS[name](problem, threads)
