"""The chunk pipeline: chunk, identify, compress, encrypt, pack; and the reverse path."""

from __future__ import annotations
