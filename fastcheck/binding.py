"""``fc.bind_params``: check code that keeps its parameters on an object.

Much backprop code reads its parameters from an object rather than taking them as an
argument: ``model.params["W1"]`` (a dict), ``net.weights[0]`` (a list), ``self.W1`` (an
attribute), or the module globals ``Wxh, Whh, ...`` of the classic character-level RNN.
``bind_params`` turns such code into the ``cost, grad, params`` that ``fc.check`` takes:
each evaluation installs the perturbed arrays on the object, calls the user's function,
and puts the object's own arrays back in a ``finally``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["bind_params", "Binding"]


# -- where the parameters live ------------------------------------------------------------
@dataclass(frozen=True)
class _Slot:
    """One entry of ``where``: an attribute holding an array, a list/tuple or a dict."""

    path: str              # as the user wrote it: "params", "weights", "fc1.W"
    owner: Any             # the object whose attribute it is
    attr: str              # the last part of the path
    kind: str              # "array" | "list" | "tuple" | "dict"
    container: Any         # the list/tuple/dict itself (None for an array)
    keys: tuple            # list/tuple positions, or dict keys
    names: tuple[str, ...]  # block names, one per key (or the one array)
    originals: tuple       # the arrays found at bind time, one per name


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {shape}" if shape is not None \
        else type(value).__name__


def _array(where: str, value: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where} must be a numpy array, got {_describe(value)}")
    if value.dtype not in (np.float64, np.float32):
        raise TypeError(
            f"{where} has dtype {value.dtype}, but a gradient check needs float64 or float32 "
            f"parameters (float32 ones are checked as fc.check checks them: in float64 where "
            f"the model follows its parameters' dtype, else against its measured noise)"
        )
    return value


def _resolve(obj: Any, path: str, label: str) -> tuple[Any, str, Any]:
    """The owner, last attribute name and value of a dotted attribute ``path``."""
    if not isinstance(path, str) or not path:
        raise TypeError(f"where must name attributes as strings, got {path!r}")
    owner, parts = obj, path.split(".")
    for k, part in enumerate(parts):
        if not hasattr(owner, part):
            have = sorted(a for a in vars(owner) if not a.startswith("_")) \
                if hasattr(owner, "__dict__") else []
            raise AttributeError(
                f"{label}.{'.'.join(parts[:k + 1])} does not exist"
                + (f"; attributes: {', '.join(have[:12])}" if have else "")
            )
        if k < len(parts) - 1:
            owner = getattr(owner, part)
    value = getattr(owner, parts[-1])
    try:  # a property without a setter or a frozen object cannot be bound
        setattr(owner, parts[-1], value)
    except (AttributeError, TypeError) as exc:
        raise TypeError(f"cannot set {label}.{path} ({exc}); bind_params needs to "
                        f"write the parameters there during the check") from exc
    return owner, parts[-1], value


def _slot(obj: Any, path: str, label: str) -> _Slot:
    owner, attr, value = _resolve(obj, path, label)
    where = f"{label}.{path}"
    if isinstance(value, np.ndarray):
        return _Slot(path, owner, attr, "array", None, (), (path,),
                     (_array(where, value),))
    if isinstance(value, (list, tuple)):
        keys = tuple(range(len(value)))
        arrays = tuple(_array(f"{where}[{i}]", a) for i, a in enumerate(value))
        kind = "list" if isinstance(value, list) else "tuple"
        return _Slot(path, owner, attr, kind, value, keys,
                     tuple(f"{path}[{i}]" for i in keys), arrays)
    if isinstance(value, MutableMapping):
        keys = tuple(value.keys())
        for key in keys:
            if not isinstance(key, str):
                raise TypeError(f"{where} must have string keys, got {key!r}")
        arrays = tuple(_array(f"{where}[{k!r}]", value[k]) for k in keys)
        return _Slot(path, owner, attr, "dict", value, keys, keys, arrays)
    raise TypeError(
        f"{where} must be a float64 array, a list (or tuple) of arrays or a dict of "
        f"arrays, got {_describe(value)}"
    )


# -- the binding ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Binding:
    """Parameters held on an object, bound for ``fc.check``; made by :func:`bind_params`.

    Pass the three fields to ``fc.check``: ``fc.check(b.cost, b.grad, b.params, args)``.

    Attributes
    ----------
    cost : callable
        ``cost(params, *args)``: installs ``params`` on the object, calls the user's cost
        function with ``*args``, restores the object, and returns the loss (or ``(loss,
        grads)`` with the gradients named, when the binding was made with ``grad=True``).
    grad : callable or True
        ``grad(params, *args)`` for a separate gradient function (its return value named
        the same way), or ``True`` when the cost function returns the gradients.
    params : dict
        ``name -> copy`` of each bound array, taken when the binding was made, in the order
        of ``where``. Names: the key of a dict entry (``"W1"``), ``"weights[0]"`` for a
        list entry, the attribute path (``"Wxh"``, ``"fc1.W"``) for an array attribute.
    """

    cost: Callable[..., Any]
    grad: Callable[..., Any] | bool
    params: dict[str, np.ndarray]
    _slots: tuple[_Slot, ...] = field(repr=False)
    _label: str = field(repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        """The block names, in order."""
        return tuple(self.params)

    def named(self, grads: Any) -> dict[str, Any]:
        """The gradients as ``name -> array``, from what the user's code returned.

        Parameters
        ----------
        grads : mapping or sequence
            A mapping keyed by block names (``W1`` or ``dW1``) is returned as it is. A
            sequence is read in the order of ``where``: its i-th entry is the gradient of
            the i-th entry of ``where`` (an array for an array attribute, a list of arrays
            for a list attribute, a mapping for a dict attribute). Entries beyond
            ``len(where)`` (hidden states, caches) are ignored.

        Returns
        -------
        dict
            ``name -> array`` for ``fc.check`` (which checks the shapes).
        """
        return _name_grads(self._slots, self._label, grads)


def _name_grads(slots: tuple[_Slot, ...], label: str, grads: Any) -> dict[str, Any]:
    """See :meth:`Binding.named`."""
    order = f"where={[s.path for s in slots]}"
    if isinstance(grads, Mapping):
        return dict(grads)
    if isinstance(grads, np.ndarray):
        if len(slots) == 1 and slots[0].kind == "array":
            return {slots[0].names[0]: grads}
        raise ValueError(f"the gradient is one array of shape {grads.shape}, but {order} "
                         f"binds several blocks: return a mapping name -> array or a "
                         f"sequence in the order of where")
    if not isinstance(grads, Sequence) or isinstance(grads, str):
        raise TypeError(f"the gradient must be a mapping or a sequence in the order of "
                        f"{order}, got {_describe(grads)}")
    if len(grads) < len(slots):
        raise ValueError(f"the gradient has {len(grads)} part(s) but {order} names "
                         f"{len(slots)}: its i-th part must be the gradient of the i-th entry")
    out: dict[str, Any] = {}
    for slot, part in zip(slots, grads):
        where = f"{label}.{slot.path}"
        if slot.kind == "array":
            out[slot.names[0]] = part
        elif slot.kind == "dict":
            if not isinstance(part, Mapping):
                raise TypeError(f"the gradient of {where} (a dict) must be a mapping, got "
                                f"{_describe(part)}")
            out.update(part)  # fc.check matches W1 or dW1 and ignores other keys
        else:  # a list or tuple: same shapes, else the parts are in another order
            expected = [a.shape for a in slot.originals]
            got = [getattr(a, "shape", None) for a in part] \
                if isinstance(part, Sequence) and not isinstance(part, str) else None
            if got != expected:
                raise ValueError(
                    f"the gradient of {where} should be {len(expected)} arrays of shapes "
                    f"{expected}, got {_describe(part) if got is None else got}; are the "
                    f"gradient's parts in the order of {order}? (e.g. backprop returns "
                    f"(nabla_b, nabla_w): where=['biases', 'weights'])"
                )
            out.update(zip(slot.names, part))
    return out


class _Installer:
    """Writes a params mapping onto the object and puts the original arrays back."""

    def __init__(self, slots: tuple[_Slot, ...]):
        self._slots = slots
        self._lock = threading.RLock()

    def _put(self, slot: _Slot, arrays: Sequence[np.ndarray]) -> None:
        if slot.kind == "array":
            setattr(slot.owner, slot.attr, arrays[0])
        elif slot.kind == "tuple":
            setattr(slot.owner, slot.attr, tuple(arrays))
        else:  # list or dict: replace the entries, keep the container
            for key, arr in zip(slot.keys, arrays):
                slot.container[key] = arr

    def _restore(self) -> None:
        for slot in self._slots:
            if slot.kind != "array":  # the same container, even if the user's code swapped it
                setattr(slot.owner, slot.attr, slot.container)
            if slot.kind != "tuple":
                self._put(slot, slot.originals)

    def call(self, params: Any, fn: Callable[..., Any], args: tuple) -> Any:
        """``fn(*args)`` with ``params`` installed; the object is restored on return."""
        if not isinstance(params, Mapping):
            raise TypeError(
                f"a bound cost or grad takes the params mapping of its binding (pass "
                f"binding.params to fc.check), got {_describe(params)}"
            )
        missing = [n for s in self._slots for n in s.names if n not in params]
        if missing:
            raise KeyError(f"params has no block(s) {missing}; pass binding.params to fc.check")
        with self._lock:
            try:
                for slot in self._slots:
                    self._put(slot, [params[name] for name in slot.names])
                return fn(*args)
            finally:
                self._restore()


def bind_params(obj: Any, where: str | Sequence[str], cost: Callable[..., Any],
                grad: Callable[..., Any] | bool) -> Binding:
    """Bind parameters held on an object, for ``fc.check``.

    Parameters
    ----------
    obj : object
        What holds the parameters: a model instance, or a module whose globals they are.
    where : str or sequence of str
        The attribute(s) of ``obj`` holding them, each (dotted paths allowed) one of:

        - a dict of arrays (``"params"`` for ``model.params["W1"]``): blocks named by
          its keys (``W1``, ``b1``, ...);
        - a list or tuple of arrays (``"weights"`` for ``net.weights[0]``): blocks
          ``weights[0]``, ``weights[1]``, ...;
        - an array (``"W1"``, ``"fc1.W"``): a block named by the attribute path.
    cost : callable
        The user's cost function, called as ``cost(*args)`` with no parameters: it reads
        them from ``obj`` (``model.loss``, ``lossFun``, a lambda). It returns the loss,
        or, with ``grad=True``, the loss followed by the gradients, as one of
        ``(loss, grads)`` or ``(loss, g1, g2, ..., extra, ...)`` (see ``grad``).
    grad : callable or True
        ``True`` when ``cost`` returns the gradients after the loss; else a function
        ``grad(*args)`` that reads the parameters from ``obj`` (``net.backprop``).
        Gradients are matched to blocks by :meth:`Binding.named`: a mapping by key
        (``W1`` or ``dW1``), a sequence in the order of ``where`` (its i-th entry is the
        gradient of the i-th attribute: an array, a list of arrays or a dict), extra
        trailing entries (hidden states) ignored.

    Returns
    -------
    Binding
        ``cost``, ``grad`` and ``params`` to pass to ``fc.check``.

    Notes
    -----
    Every evaluation installs fastcheck's perturbed arrays on ``obj`` (list and dict
    entries are replaced in place, attributes are set), calls the user's function and puts
    the object's own array objects back in a ``finally``: between evaluations, after the
    check and after an exception (or Ctrl-C) ``obj`` holds exactly the arrays it held
    before, unchanged. Consequences:

    - The user's function must read the parameters from ``obj`` at each call; a copy kept
      elsewhere (``self.W = self.params["W"]`` in ``__init__``) is not seen.
    - ``params`` is a snapshot taken by ``bind_params``: bind again after training.
    - Writing the parameters onto a shared object is not thread-safe, so evaluations are
      serialised by a lock. ``backend="auto"`` resolves to ``"serial"`` for these Python
      callables; ``backend="threads"`` would be correct but no faster.

    Examples
    --------
    A CS231n-style model whose ``loss(X, y)`` returns ``(loss, grads)``:

    >>> import numpy as np, fastcheck as fc
    >>> class Model:
    ...     def __init__(self):
    ...         self.params = {"W": np.array([[1.0, -2.0], [0.5, 3.0]])}
    ...     def loss(self, X):
    ...         W = self.params["W"]
    ...         return float(np.sum((X @ W) ** 2)), {"W": 2 * X.T @ (X @ W)}
    >>> model = Model()
    >>> b = fc.bind_params(model, "params", model.loss, grad=True)
    >>> fc.check(b.cost, b.grad, b.params, (np.eye(2),)).passed
    True

    A Nielsen-style network (``net.biases``, ``net.weights``; ``net.backprop(x, y)``
    returns ``(nabla_b, nabla_w)``, so ``where`` lists biases first)::

        b = fc.bind_params(net, ["biases", "weights"],
                           lambda x, y: 0.5 * np.sum((net.feedforward(x) - y) ** 2),
                           grad=net.backprop)
        fc.check(b.cost, b.grad, b.params, (x, y))

    The character-level RNN, whose parameters are module globals and whose
    ``lossFun(inputs, targets, hprev)`` returns ``(loss, dWxh, dWhh, dWhy, dbh, dby, hs)``::

        b = fc.bind_params(min_char_rnn, ["Wxh", "Whh", "Why", "bh", "by"],
                           min_char_rnn.lossFun, grad=True)
        fc.check(b.cost, b.grad, b.params, (inputs, targets, hprev))
    """
    label = obj.__name__ if isinstance(obj, ModuleType) else type(obj).__name__
    paths = [where] if isinstance(where, str) else list(where)
    if not paths:
        raise ValueError("where must name at least one attribute, got an empty list")
    if not callable(cost):
        raise TypeError(f"cost must be callable, got {type(cost).__name__}")
    if not (grad is True or callable(grad)):
        raise TypeError(f"grad must be True (cost returns the gradients) or a callable "
                        f"grad(*args), got {grad!r}")
    slots = tuple(_slot(obj, path, label) for path in paths)
    params: dict[str, np.ndarray] = {}
    for slot in slots:
        for name, arr in zip(slot.names, slot.originals):
            if name in params:
                raise ValueError(f"two bound parameters are named {name!r} (where={paths})")
            # float32 stays float32 so that fc.check applies its float32 rules (API.md)
            params[name] = np.array(arr, copy=True)
    installer = _Installer(slots)

    if grad is True:
        def bound_cost(theta: Mapping[str, np.ndarray], *args: Any) -> Any:
            value = installer.call(theta, cost, args)
            if not isinstance(value, tuple) or len(value) < 2:
                raise TypeError(
                    f"with grad=True, the cost function must return (loss, grads) or (loss, "
                    f"g1, g2, ...), got {_describe(value)}"
                )
            rest = value[1:]
            if len(rest) == 1 and (len(slots) > 1 or isinstance(rest[0], Mapping)):
                rest = rest[0]  # (loss, grads): grads is a mapping or a sequence
            return value[0], _name_grads(slots, label, rest)
        bound_grad: Callable[..., Any] | bool = True
    else:
        def bound_cost(theta: Mapping[str, np.ndarray], *args: Any) -> Any:
            return installer.call(theta, cost, args)

        def bound_grad(theta: Mapping[str, np.ndarray], *args: Any) -> Any:
            return _name_grads(slots, label, installer.call(theta, grad, args))

    return Binding(bound_cost, bound_grad, params, slots, label)
