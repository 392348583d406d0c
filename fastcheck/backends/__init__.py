"""Backends: one module each, chosen from one table."""

from __future__ import annotations

from numba.extending import is_jitted

from .numba_backend import NumbaBackend
from .processes import ProcessesBackend, auto_choice
from .serial import SerialBackend
from .threads import ThreadsBackend


def _dask_backend(problem, threads: int | None = None, client=None):
    """The dask backend, imported on first use: dask is an optional dependency."""
    try:
        from .dask_backend import DaskBackend
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("dask", "distributed"):
            raise
        raise ImportError(
            "backend='dask' needs dask.distributed, which is not installed: "
            'pip install "fastcheck[dask]"'
        ) from exc
    return DaskBackend(problem, threads, client=client)


BACKENDS = {
    "numba": NumbaBackend,
    "processes": ProcessesBackend,
    "threads": ThreadsBackend,
    "serial": SerialBackend,
    "dask": _dask_backend,
}

#: Keyword options of ``fc.check`` that only some backends take.
BACKEND_OPTIONS = {"dask": ("client",)}

#: Values accepted by ``fc.check(backend=...)``.
BACKEND_NAMES = ("auto", *BACKENDS)


def resolve_backend(name: str, problem, n_components: int | None = None,
                    method: str = "central", threads: int | None = None) -> str:
    """The backend that ``name`` means for this problem (see ``choose_backend``)."""
    return choose_backend(name, problem, n_components, method, threads)[0]


def choose_backend(name: str, problem, n_components: int | None = None,
                   method: str = "central", threads: int | None = None
                   ) -> tuple[str, str | None]:
    """The backend that ``name`` means for this problem, and for ``auto`` why.

    ``auto``: numba for an ``@njit`` cost on a flat vector; otherwise processes when the
    check of ``n_components`` (default: all) is long enough to pay for starting worker
    processes, serial when it is not — never threads, since Python costs are often not
    thread-safe. The reason is a sentence for ``report.notes`` (None when not ``auto``).
    """
    if name != "auto":
        return name, None
    if is_jitted(problem.cost) and problem.params_kind == "flat" \
            and not problem.cost_returns_grad:
        return "numba", None
    n = problem.layout.size if n_components is None else n_components
    return auto_choice(problem, n, method, threads)


def create_backend(name: str, problem, threads: int | None, **options):
    """Instantiate the backend ``name`` (already resolved) for ``problem``.

    ``options`` (e.g. ``client``) go only to the backends that take them; one given
    (not None) for another backend is a ``ValueError``.
    """
    accepted = BACKEND_OPTIONS.get(name, ())
    for key, value in options.items():
        if value is not None and key not in accepted:
            users = [b for b, opts in BACKEND_OPTIONS.items() if key in opts]
            raise ValueError(
                f"{key}= is only used with backend={' or '.join(map(repr, users)) or '?'}, "
                f"got backend={name!r}"
            )
    return BACKENDS[name](problem, threads, **{k: v for k, v in options.items()
                                               if k in accepted})
