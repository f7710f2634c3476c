"""Passphrase key derivation: Argon2id from `cryptography`, calibrated once at `init`.

The parameters are stored in the repository config, so every passphrase slot of one
repository shares them and a passphrase is stretched exactly once per unlock, however many
passphrase slots there are. `COFFER_KDF_TARGET_SECONDS` sets the calibration target
(default 0.5 s); slow machines lower it, but never below the floor of 64 MiB and 3 passes
(RFC 9106's second recommended option uses 64 MiB, t = 3). Parameters read from storage are
checked against the same bounds: a storage provider who weakens them gets the config refused,
not a fast-to-guess new passphrase slot. `COFFER_INSECURE_TEST_KDF=1` lowers the floor to 8 MiB
and one pass, for test suites only (a test suite derives keys thousands of times).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from agent.errors import UsageError

DEFAULT_TARGET_SECONDS = 0.5
FLOOR_MEMORY_KIB = 64 * 1024
FLOOR_ITERATIONS = 3
TEST_MEMORY_KIB = 8 * 1024
CALIBRATION_MEMORY_KIB = 64 * 1024
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_ITERATIONS = 64
MAX_LANES = 16
INSECURE_TEST_VARIABLE = "COFFER_INSECURE_TEST_KDF"


def floor() -> tuple[int, int]:
    """(memory KiB, iterations) below which no parameters are used or accepted."""
    if os.environ.get(INSECURE_TEST_VARIABLE) == "1":
        return TEST_MEMORY_KIB, 1
    return FLOOR_MEMORY_KIB, FLOOR_ITERATIONS


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
    def from_dict(cls, doc: object, where: str = "the key derivation parameters") -> KdfParams:
        """Parse stored parameters; weak, absurd or malformed ones raise `KdfParamsError` naming `where`."""
        try:
            params = cls(**doc)  # type: ignore[arg-type]
            salt = bytes.fromhex(params.salt)
            values = (int(params.memory_kib), int(params.iterations), int(params.lanes))
        except (TypeError, ValueError) as exc:
            raise KdfParamsError(f"{where} are not valid") from exc
        memory, iterations = floor()
        if params.algorithm != "argon2id" or len(salt) < 16:
            raise KdfParamsError(f"{where} name an unsupported key derivation")
        if values[0] < memory or values[1] < iterations:
            raise KdfParamsError(
                f"{where} are weaker than Coffer accepts ({values[0] // 1024} MiB, {values[1]} passes; at least "
                f"{memory // 1024} MiB and {iterations} passes): refused, they may have been weakened on storage"
            )
        if values[0] > MAX_MEMORY_KIB or values[1] > MAX_ITERATIONS or not 1 <= values[2] <= MAX_LANES:
            raise KdfParamsError(f"{where} are out of range (memory, passes or lanes too large)")
        return params


class KdfParamsError(ValueError):
    """Stored key-derivation parameters that Coffer refuses; callers turn it into the right CofferError."""


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
    memory, iterations = floor()
    if target < 0.05:
        return KdfParams(salt=salt, memory_kib=memory, iterations=iterations, lanes=1)
    trial = KdfParams(salt=salt, memory_kib=CALIBRATION_MEMORY_KIB, iterations=1, lanes=4)
    start = time.perf_counter()
    trial.derive("calibration")
    elapsed = max(time.perf_counter() - start, 1e-3)
    passes = min(MAX_ITERATIONS, max(iterations, round(target / elapsed)))
    return KdfParams(salt=salt, memory_kib=max(memory, CALIBRATION_MEMORY_KIB), iterations=passes, lanes=4)
