"""The dask backend: ``client.py`` runs in the checking process, ``worker.py`` on the
cluster's workers. Importing this package imports ``distributed``."""

from .client import DaskBackend

__all__ = ["DaskBackend"]
