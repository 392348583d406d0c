"""Kernels cached on disk, one small generated module per importable cost.

numba will not cache a ``parallel=True`` kernel that receives the cost as an argument
("Cannot cache ... dynamic globals"), so ``_kernels.central_values`` compiles in every
process (~2 s). It *does* cache a kernel whose module imports the cost as a global. For a
cost that can be imported by name (``cost.__module__`` is a real module, not ``__main__``
or a notebook, and ``module.qualname`` is this very dispatcher), fastcheck writes such a
module into its cache directory and imports it; numba caches the compiled kernel next to
it, and a later process loads it in a fraction of a second.

numba does not invalidate a cached caller when a callee changes, so the module's file
name is a hash of the cost's code: the bytecode and options of the cost and of every
function it reaches through its globals (jitted or ``register_jitable``, also through
``module.attr`` chains), the bytes of their source files and of the modules of anything
else they reach (a ``vectorize`` ufunc), the values numba freezes (an imported constant),
and the numba, Python and kernel versions. A changed cost hashes differently and gets a new
kernel; stale files are simply never used again (delete the directory to reclaim them).

Where: ``$FASTCHECK_CACHE_DIR``, else ``$NUMBA_CACHE_DIR/fastcheck``, else
``$XDG_CACHE_HOME/fastcheck`` or ``~/.cache/fastcheck``. ``FASTCHECK_KERNEL_CACHE=0``
turns the cache off. Any failure (unwritable directory, import error) falls back to the
uncached kernel silently: the cache only ever saves time.

``kernel_compile`` compiles (or loads) a kernel on a thread of its own, so that the numba
backend can evaluate the first components serially meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import time
import types
import warnings
from pathlib import Path

import numba
import numpy as np
from numba.core.errors import NumbaWarning
from numba.core.registry import CPUDispatcher

from . import _kernels

#: Bump when the generated module changes in a way the source hash would not catch.
KERNEL_VERSION = "2"

_loaded: dict[str, object] = {}  # key -> kernel dispatcher, this process
_keys: dict[int, tuple[object, str]] = {}  # id(cost) -> (cost, key): a dispatcher's code is fixed
#: id(cost) -> (cost, its kernel), once loaded: every check after the first skips the lookup
_kernel_of: dict[int, tuple[object, object]] = {}


def enabled() -> bool:
    """False when ``FASTCHECK_KERNEL_CACHE=0`` or numba's JIT is disabled."""
    if os.environ.get("FASTCHECK_KERNEL_CACHE", "1").strip().lower() in ("0", "false", "no"):
        return False
    return not numba.config.DISABLE_JIT


def cache_dir() -> Path:
    """The directory of the generated kernel modules (not created here)."""
    explicit = os.environ.get("FASTCHECK_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    if numba.config.CACHE_DIR:
        return Path(numba.config.CACHE_DIR).expanduser() / "fastcheck"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fastcheck" / "kernels"


def importable_name(cost) -> tuple[str, str] | None:
    """``(module, qualname)`` when ``import module; module.qualname`` is ``cost``, else None.

    Used for the kernel cache (a generated module imports the cost) and by the dask
    backend (a worker imports the cost instead of receiving it by value).
    """
    module = getattr(cost, "__module__", None)
    qualname = getattr(cost, "__qualname__", None) or getattr(cost, "__name__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    mod = sys.modules.get(module)
    if mod is None or not getattr(mod, "__file__", None):
        return None
    obj: object = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return (module, qualname) if obj is cost else None


def _file_digest(path: str, memo: dict[str, bytes]) -> bytes:
    if path not in memo:
        try:
            memo[path] = hashlib.sha256(Path(path).read_bytes()).digest()
        except OSError:
            memo[path] = path.encode()
    return memo[path]


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _const_text(const) -> str:
    """A text of a code constant that is the same in every process (sets sorted)."""
    if isinstance(const, types.CodeType):
        return _code_text(const)
    if isinstance(const, (frozenset, set)):
        return "{" + ",".join(sorted(map(_const_text, const))) + "}"
    if isinstance(const, tuple):
        return "(" + ",".join(map(_const_text, const)) + ")"
    return repr(const)


def _code_text(code: types.CodeType) -> str:
    """The bytecode, names and constants of ``code``, stable across processes.

    Not ``marshal.dumps``: its output depends on reference counts (an object referred to
    more than once is written as a back-reference), which numba's compilation of the
    function changes, so the first process computed a different key than the later ones
    and its kernel was never found again.
    """
    return "|".join((code.co_code.hex(), repr(code.co_names), repr(code.co_varnames),
                     repr(code.co_freevars), repr(code.co_cellvars),
                     ",".join(map(_const_text, code.co_consts))))


#: How deep ``module.attr.attr`` chains are followed from a function's globals.
MAX_ATTRIBUTE_DEPTH = 3
#: Libraries whose code is covered by their version (numba's is in the key) or does not
#: change under a user: not walked (``np.sum`` would lead through all of numpy).
LIBRARIES = frozenset({"numpy", "numba", "scipy", "llvmlite", "math", "cmath", "builtins",
                       "operator", "functools", "itertools", "collections", "typing"})


def _library(obj) -> bool:
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(
        obj, "__module__", None)
    return isinstance(name, str) and name.split(".")[0] in LIBRARIES


def _names(func) -> set[str]:
    names: set[str] = set()
    for code in _code_objects(func.__code__):
        names.update(code.co_names)
    return names


def _module_file(obj) -> str | None:
    """The source file of the module ``obj`` was defined in, if it has one."""
    module = obj if isinstance(obj, types.ModuleType) else sys.modules.get(
        getattr(obj, "__module__", None) or "")
    return getattr(module, "__file__", None)


def _value_text(value) -> str | None:
    """The text of a global value numba freezes into compiled code (a number, a string, a
    tuple of them, an array), or None for anything else."""
    if isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        return repr(value)
    if isinstance(value, tuple):
        parts = [_value_text(v) for v in value]
        return None if None in parts else "(" + ",".join(parts) + ")"  # type: ignore[arg-type]
    if isinstance(value, np.ndarray):
        return f"{value.dtype.str}{value.shape}" + hashlib.sha256(
            np.ascontiguousarray(value).tobytes()).hexdigest()
    return None


def _reached(func) -> tuple[list, list[str], list[str]]:
    """What the compiled ``func`` depends on through its globals.

    Returns the functions to hash in turn (jitted dispatchers, and plain functions such as
    ``register_jitable`` helpers), the source files of every module an object reached
    comes from (a ``vectorize`` ufunc, a module named in an attribute chain such as
    ``helpers.sub.act``), and the values numba freezes (a constant imported from a config
    module). A stale kernel would keep the old ones: each goes into the key.
    """
    names = _names(func)
    functions, files, values = [], [], []

    def visit(name: str, value, depth: int) -> None:
        if _library(value):
            return
        if isinstance(value, CPUDispatcher):
            functions.append(value)
        elif isinstance(value, types.FunctionType):
            functions.append(value)
        elif isinstance(value, types.ModuleType):
            if depth < MAX_ATTRIBUTE_DEPTH:
                for attr in sorted(names):
                    inner = getattr(value, attr, None)
                    if inner is not None and inner is not value:
                        visit(f"{name}.{attr}", inner, depth + 1)
        else:
            text = _value_text(value)
            if text is not None:
                values.append(f"{name}={text}")
                return
        where = _module_file(value)
        if where:
            files.append(where)

    for name in sorted(names):
        if name in func.__globals__:
            visit(name, func.__globals__[name], 0)
    return functions, files, values


def code_key(cost) -> str:
    """Hash of everything the compiled kernel depends on (see the module docstring)."""
    known = _keys.get(id(cost))
    if known is not None and known[0] is cost:
        return known[1]
    key = _code_key(cost)
    _keys[id(cost)] = (cost, key)
    return key


def _code_key(cost) -> str:
    h = hashlib.sha256()
    for part in (KERNEL_VERSION, numba.__version__, sys.version,
                 _kernels.cached_kernel_source("m", "q", "k")):
        h.update(part.encode())
    memo: dict[str, bytes] = {}
    seen: set[int] = set()
    todo: list = [cost]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        func = getattr(item, "py_func", item)
        h.update(f"{func.__module__}.{func.__qualname__}".encode())
        h.update(repr(sorted(getattr(item, "targetoptions", {}).items())).encode())
        h.update(_code_text(func.__code__).encode())
        h.update(_file_digest(func.__code__.co_filename, memo))
        functions, files, values = _reached(func)
        for path in sorted(set(files)):
            h.update(_file_digest(path, memo))
        h.update("|".join(values).encode())
        todo.extend(functions)
    return h.hexdigest()[:24]


def _write_once(path: Path, text: str) -> None:
    """Create ``path`` atomically unless it already holds ``text``.

    Rewriting an identical file would change its timestamp, which numba takes as a
    changed source and so would throw away the compiled kernel.
    """
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cached_kernel(cost):
    """The disk-cacheable kernel for ``cost``, or None when ``cost`` cannot have one.

    Returns a dispatcher ``kernel(theta, indices, x_plus, x_minus, n_chunks, args)``.
    Compilation (or loading from numba's cache) happens at its first call.
    """
    if not enabled() or not isinstance(cost, CPUDispatcher):
        return None
    known = _kernel_of.get(id(cost))
    if known is not None and known[0] is cost:  # every check after the first
        return known[1]
    kernel = _cached_kernel(cost)
    if kernel is not None:
        _kernel_of[id(cost)] = (cost, kernel)
    return kernel


def _cached_kernel(cost):
    name = importable_name(cost)
    if name is None:
        return None
    try:
        key = code_key(cost)
        if key in _loaded:
            return _loaded[key]
        modname = f"fastcheck_kernel_{key}"
        path = cache_dir() / f"{modname}.py"
        _write_once(path, _kernels.cached_kernel_source(*name, key))
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[modname]
            raise
        if module._cost is not cost:  # the import resolved to another object
            return None
        _loaded[key] = module.central_values
        return module.central_values
    except Exception:  # the cache only saves time: fall back to the uncached kernel
        return None


# -- compiling in the background ----------------------------------------------------
_warnings_quiet: list[bool] = []  # the filter below, installed once


def _compile_kernel(kernel, types: tuple) -> float:
    """Compile (or load from the disk cache) ``kernel`` for ``types``; the seconds taken."""
    start = time.perf_counter()
    kernel.compile(types)
    return time.perf_counter() - start


class KernelCompile(threading.Thread):
    """The compile of one kernel for one set of argument types, on its own thread.

    With a ``child`` (``_kernel_fork``: a process compiling the kernel into numba's disk
    cache), the thread first waits for it, then loads the kernel from the disk cache; or
    skips the load when the check no longer ``needed`` it; or compiles it here when the
    child failed.
    """

    def __init__(self, kernel, types: tuple, child=None):
        super().__init__(name="fastcheck-compile")
        self.kernel, self.types, self.child = kernel, types, child
        self.needed = True
        self.seconds = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        start = time.perf_counter()
        try:
            if self.child is not None and self.child.wait() and not self.needed:
                return
            _compile_kernel(self.kernel, self.types)
        except BaseException as exc:  # handed to the check, on its thread
            self.error = exc
        finally:
            self.seconds = time.perf_counter() - start


def _fingerprint(value) -> object:
    """What numba's type of ``value`` depends on, for arrays, scalars and tuples of them
    (other objects by identity): ~1 us an array, where ``numba.typeof`` takes ~20."""
    if isinstance(value, np.ndarray):
        f = value.flags
        return (type(value), value.dtype.str, value.ndim, f.c_contiguous, f.f_contiguous,
                f.writeable, f.aligned)
    if isinstance(value, tuple):
        return tuple(map(_fingerprint, value))
    if isinstance(value, (bool, int, float, complex, np.generic)):
        return type(value)
    return (type(value), id(value))


_ready: set = set()  # (id(kernel), fingerprint of the arguments) known to be compiled


def kernel_compile(kernel, call_args: tuple) -> KernelCompile | None:
    """Start compiling ``kernel`` for these arguments; None when it is compiled already."""
    if not hasattr(kernel, "overloads"):  # NUMBA_DISABLE_JIT: a plain Python function
        return None
    key = (id(kernel), _fingerprint(call_args))
    if key in _ready:  # every check after the first: no numba.typeof (~0.1 ms)
        return None
    types = tuple(numba.typeof(a) for a in call_args)
    if types in kernel.overloads:
        if len(_ready) < 10_000:  # kernels live as long as the process (_kernel_cache)
            _ready.add(key)
        return None
    if not _warnings_quiet:
        # A cost numba cannot cache is still correct: say nothing. The filter is global
        # (warnings.catch_warnings is not thread-safe), so it names our kernel only.
        warnings.filterwarnings("ignore", message='Cannot cache compiled function '
                                '"central_values"', category=NumbaWarning)
        _warnings_quiet.append(True)
    if on_disk(kernel, types):
        try:  # a load from numba's disk cache: here, not on a thread (see on_disk)
            kernel.compile(types)
        except Exception:  # pragma: no cover - the thread below meets it and reports it
            pass
        else:
            _ready.add(key)
            return None
    from ._kernel_fork import claim

    job = KernelCompile(kernel, types, claim(kernel, types))
    job.start()
    return job


def on_disk(kernel, types: tuple, unknown: bool = False) -> bool:
    """Whether numba's disk cache holds ``kernel`` for ``types`` (its index names them);
    ``unknown`` when numba's cache internals, which this reads, cannot tell.

    Such a load takes ~0.03 s on the calling thread, against ~0.17 s on a thread that
    needs the GIL back from the serial loop after each of its ~700 LLVM calls.
    """
    try:
        cache = kernel._cache
        key = cache._index_key(types, kernel.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:
        return unknown
