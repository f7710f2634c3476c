"""Passphrase key derivation: Argon2id from `cryptography`, calibrated once at `init`.

The parameters are stored in the repository config, so every passphrase slot of one
repository shares them and a passphrase is stretched exactly once per unlock, however many
passphrase slots there are. `COFFER_KDF_TARGET_SECONDS` sets the calibration target
(default 0.5 s); tests and slow machines lower it.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from agent.errors import UsageError

DEFAULT_TARGET_SECONDS = 0.5
MIN_MEMORY_KIB = 8 * 1024
CALIBRATION_MEMORY_KIB = 64 * 1024
MAX_ITERATIONS = 64


@dataclass(frozen=True)
class KdfParams:
    salt: str  # hex
    memory_kib: int
    iterations: int
    lanes: int
    algorithm: str = "argon2id"

    def derive(self, passphrase: str) -> bytes:
        if self.algorithm != "argon2id":
            raise UsageError(f"unsupported key derivation {self.algorithm!r}")
        return Argon2id(
            salt=bytes.fromhex(self.salt),
            length=32,
            iterations=self.iterations,
            lanes=self.lanes,
            memory_cost=self.memory_kib,
        ).derive(passphrase.encode("utf-8"))

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> KdfParams:
        return cls(**doc)  # type: ignore[arg-type]


def target_seconds() -> float:
    raw = os.environ.get("COFFER_KDF_TARGET_SECONDS")
    if raw is None:
        return DEFAULT_TARGET_SECONDS
    try:
        value = float(raw)
    except ValueError as exc:
        raise UsageError(f"COFFER_KDF_TARGET_SECONDS must be a number, not {raw!r}") from exc
    return max(value, 0.0)


def calibrate(target: float | None = None) -> KdfParams:
    """Choose Argon2id parameters that take about `target` seconds here."""
    target = target_seconds() if target is None else target
    salt = os.urandom(16).hex()
    if target < 0.05:
        return KdfParams(salt=salt, memory_kib=MIN_MEMORY_KIB, iterations=1, lanes=1)
    trial = KdfParams(salt=salt, memory_kib=CALIBRATION_MEMORY_KIB, iterations=1, lanes=4)
    start = time.perf_counter()
    trial.derive("calibration")
    elapsed = max(time.perf_counter() - start, 1e-3)
    if elapsed > target:
        memory = max(MIN_MEMORY_KIB, int(CALIBRATION_MEMORY_KIB * target / elapsed))
        return KdfParams(salt=salt, memory_kib=memory, iterations=1, lanes=4)
    iterations = min(MAX_ITERATIONS, max(1, round(target / elapsed)))
    return KdfParams(salt=salt, memory_kib=CALIBRATION_MEMORY_KIB, iterations=iterations, lanes=4)
