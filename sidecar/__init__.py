"""leak-sidecar: stop a Go service's memory and resource leaks before they take it down."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
