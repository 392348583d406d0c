"""Backends: one module each, chosen from one table."""

from __future__ import annotations

from collections.abc import Callable

from .._lazy import is_jitted
from .base import Backend, require
from .processes import ProcessesBackend, auto_choice
from .serial import SerialBackend
from .threads import ThreadsBackend


def _numba_class():
    """The numba backend's class, imported on first use: numba takes ~0.25 s to import."""
    from .numba_backend import NumbaBackend

    return NumbaBackend


def _numba_backend(problem, threads: int | None = None):
    """The numba backend (see ``backends/numba_backend.py``)."""
    return _numba_class()(problem, threads)


def _dask_class():
    """The dask backend's class, imported on first use: dask is an optional dependency."""
    try:
        from .dask import DaskBackend
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("dask", "distributed"):
            raise
        raise ImportError(
            "backend='dask' needs dask.distributed, which is not installed: "
            'pip install "fastcheck[dask]"'
        ) from exc
    return DaskBackend


def _dask_backend(problem, threads: int | None = None, client=None):
    """The dask backend (see ``backends/dask/``)."""
    return _dask_class()(problem, threads, client=client)


#: name -> class (or factory) taking ``(problem, threads, **options)``; every backend
#: derives from ``base.Backend``.
BACKENDS: dict[str, Callable[..., Backend]] = {
    "numba": _numba_backend,
    "processes": ProcessesBackend,
    "threads": ThreadsBackend,
    "serial": SerialBackend,
    "dask": _dask_backend,
}

#: Keyword options of ``fc.check`` that only some backends take.
BACKEND_OPTIONS = {"dask": ("client",)}

#: Backends whose module is imported on first use (optional dependencies).
_LAZY_CLASSES = {"numba": _numba_class, "dask": _dask_class}

#: Values accepted by ``fc.check(backend=...)``.
BACKEND_NAMES = ("auto", *BACKENDS)


def backend_class(name: str):
    """The class of the backend ``name`` (importing it if it is optional)."""
    load = _LAZY_CLASSES.get(name)
    return load() if load is not None else BACKENDS[name]


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


def create_backend(name: str, problem, threads: int | None, *, method: str = "central",
                   **options):
    """Instantiate the backend ``name`` (already resolved) for ``problem``.

    A backend that cannot evaluate ``method`` (e.g. ``dask`` and ``"complex"``) is a
    ``ValueError`` here, before anything runs. ``options`` (e.g. ``client``) go only to
    the backends that take them; one given (not None) for another backend is a
    ``ValueError``.
    """
    require(backend_class(name), method)
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
