"""The one JSON cleaner, and the JSON form (``to_dict``) of a Report and a TaylorResult."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..report import Report
    from ..taylor import TaylorResult

__all__ = ["jsonable", "report_dict", "taylor_dict"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values: arrays and tuples as lists, numpy scalars as Python
    numbers, NaN and infinities as ``None`` (JSON has none), mapping keys as strings."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def report_dict(report: Report) -> dict:
    """Everything in ``report`` as JSON-serialisable values (see ``Report.to_dict``)."""
    out = {
        "passed": report.passed,
        "verdict": report.verdict,
        "relative_error": report.relative_error,
        "smooth_relative_error": report.smooth_relative_error,
        "n_params": report.n_params,
        "n_checked": report.n_checked,
        "n_kinks": report.n_kinks,
        "indices": report.indices,
        "analytic": report.analytic,
        "numeric": report.numeric,
        "abs_errors": report.abs_errors,
        "rel_errors": report.rel_errors,
        "kinds": [str(k) for k in report.kinds],
        "steps": report.steps,
        "failed": report.failed,
        "unresolved": report.unresolved,
        "blocks": [{"name": b.name, "shape": b.shape, "n_params": b.n_params,
                    "n_checked": b.n_checked, "relative_error": b.relative_error,
                    "max_rel_error": b.max_rel_error, "n_failed": b.n_failed,
                    "n_kinks": b.n_kinks, "verdict": b.verdict,
                    "failure_rate_bound": b.failure_rate_bound,
                    "n_unresolved": b.n_unresolved}
                   for b in report.blocks],
        "worst": [{**c._asdict(), "label": report.layout.label(c.flat_index)}
                  for c in report.worst(10)],
        "stats": report.stats,
        "failure_rate_bound": report.failure_rate_bound,
        "confidence": report.confidence,
        "hints": report.hints,
        "seed": report.seed,
        "eps": report.eps,
        "rtol": report.rtol,
        "backend": report.backend,
        "threads": report.threads,
        "seconds": report.seconds,
        "compile_seconds": report.compile_seconds,
        "evaluations": report.evaluations,
        "sampled": report.sampled,
        "stop_reason": report.stop_reason,
        "mode": report.mode,
        "method": report.method,
        "notes": report.notes,
        "directional": (None if report.directional is None
                        else dataclasses.asdict(report.directional)),
        "layout": dict(zip(report.layout.names, report.layout.shapes)),
    }
    return jsonable(out)


def taylor_dict(result: TaylorResult) -> dict:
    """Everything in a Taylor test's result as JSON-serialisable values."""
    return jsonable({
        "rate": result.rate, "passed": result.passed, "stderr": result.stderr,
        "residuals": result.residuals, "steps": result.steps, "used": result.used,
        "floor": result.floor, "direction_norm": float(np.linalg.norm(result.direction)),
        "slope": result.slope, "j0": result.j0, "detection_limit": result.detection_limit,
        "note": result.note, "evaluations": result.evaluations, "seed": result.seed,
    })
