"""Reference models with injectable gradient bugs, for testing and benchmarking checkers."""

from fastcheck.models.mlp import (
    BATCH,
    BUGS,
    SIZES,
    MLPProblem,
    affected_blocks,
    cost,
    cost_python,
    grad,
    make_mlp,
    mlp_layout,
)

__all__ = [
    "BATCH",
    "BUGS",
    "SIZES",
    "MLPProblem",
    "affected_blocks",
    "cost",
    "cost_python",
    "grad",
    "make_mlp",
    "mlp_layout",
]
