"""Write the ``.npz`` files of ``tiny_net.py``: its parameters and its extra arguments.

Regenerate both with (from the repository root)::

    python examples/make_npz.py

- ``examples/tiny_net_params.npz``: ``np.savez(file, W1=..., b1=..., W2=..., b2=...)``;
  the keys become the block names of the report.
- ``examples/tiny_net_args.npz``: ``np.savez(file, X=X, Y=Y, lambd=0.7)``;
  ``fastcheck check`` passes the arrays to ``cost`` and ``backward`` after the params in
  the order they were saved: ``cost(params, X, Y, lambd)``. The 0-d array ``lambd`` is
  passed as the Python float 0.7.

The values are fixed by seeds, so the files only change if ``tiny_net.py`` does (the zip
timestamps aside).
"""

from pathlib import Path

import numpy as np
from tiny_net import init_params, make_data

HERE = Path(__file__).resolve().parent


def main() -> None:
    params = init_params()
    X, Y = make_data()
    np.savez(HERE / "tiny_net_params.npz", **params)
    np.savez(HERE / "tiny_net_args.npz", X=X, Y=Y, lambd=0.7)
    print(f"wrote {HERE / 'tiny_net_params.npz'} ({', '.join(params)})")
    print(f"wrote {HERE / 'tiny_net_args.npz'} (X {X.shape}, Y {Y.shape}, lambd 0.7)")


if __name__ == "__main__":
    main()
