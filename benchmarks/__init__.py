"""Benchmarks of Coffer against other backup tools (run by hand, not in CI; see benchmarks/README.md)."""

from __future__ import annotations
