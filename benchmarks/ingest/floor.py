"""The per-byte floor of an import: what its per-byte work alone costs on this machine, with no import around it.

    .venv/bin/python -m benchmarks.ingest.floor FOLDER SCRATCH [--workers N] [--no-write | --disk-only BYTES]

Every file of a backup folder is read into a reused buffer and cut into chunks (the native cut finder); each
chunk gets its ID (keyed BLAKE3), is looked up in a set of the IDs seen, and, when new, is compressed where the
importer would compress it (zstd, the same level and rules) and sealed with AES-256-GCM into a pack; each full
pack is sealed, named (BLAKE3) and written as a local repository writes it (O_DIRECT, fsync) by two upload
threads, at most two packs in flight. These are Coffer's own components, called as `BlobWriter` calls them, on
`--workers` threads that each take the next file; what is left out is the import itself: its snapshot, index,
files cache and Manifest.db, the writer's lock and placement, the small-file thread, progress and start-up.
With `--no-write` the packs are sealed but not written: the CPU-bound ceiling. With `--disk-only BYTES` nothing
is read or sealed: that many bytes of packs are written the same way, the device's own ceiling.

The figure answers how far the pipeline is from what the machine allows for the same work: bench_ingest runs
it in the same run as the tools and reports it beside them. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.archive.importer import default_workers
from agent.errors import CofferError
from agent.ios.folder import BackupFolder
from agent.ios.records import FileRecord
from agent.keys import primitives
from agent.pipeline import compression
from agent.pipeline.chunker import Chunker, ChunkerParams, is_sqlite_name
from agent.repository.config import ChunkerSettings, PackSettings
from agent.repository.pack import PackBuilder
from agent.storage.local import LocalStorage

MIB = 1 << 20
WITH_WRITES, CPU_ONLY, DISK_ONLY = (
    "per-byte work, packs written",
    "per-byte work, CPU only",
    "pack writes only",
)
MODES = (WITH_WRITES, CPU_ONLY, DISK_ONLY)
PACKS_IN_FLIGHT = 2  # as BlobWriter: two upload threads, two packs in flight
_PACK_TARGET = (PackSettings.min_size + PackSettings.max_size) // 2


@dataclass(frozen=True)
class FloorResult:
    mode: str  # one of MODES
    workers: int
    wrote: bool
    files: int
    input_bytes: int
    chunks: int
    new_chunks: int
    stored_bytes: int  # bytes of the packs (compressed, sealed)
    packs: int
    wall_seconds: float  # from the first file read to the last pack written: no start-up
    cpu_seconds: float  # of the process over the same span

    @property
    def throughput(self) -> float:
        """MiB of input per second."""
        return self.input_bytes / MIB / self.wall_seconds


class _Floor:
    """The shared state of one run: the files still to take, the IDs seen, the packs being written."""

    def __init__(
        self, folder: BackupFolder, scratch: Path, *, write: bool, keys: tuple[bytes, bytes]
    ) -> None:
        self.folder = folder
        self.storage = LocalStorage(scratch)
        self.write = write
        settings = ChunkerSettings()
        self.params = ChunkerParams(settings.min_size, settings.avg_size, settings.max_size)
        self.chunker_key, self.id_key = keys
        self.public_key = (
            X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        self.records: Iterator[FileRecord] = (record for record in folder.take_records() if record.is_file)
        self.lock = threading.Lock()
        self.seen: set[bytes] = set()
        self.uploads = ThreadPoolExecutor(max_workers=PACKS_IN_FLIGHT, thread_name_prefix="floor-upload")
        self.in_flight = threading.BoundedSemaphore(PACKS_IN_FLIGHT)
        self.futures: list[Future[int]] = []
        self.files = self.input_bytes = self.chunks = self.new_chunks = 0
        self.failure: BaseException | None = None

    def next_record(self) -> FileRecord | None:
        with self.lock:
            record = next(self.records, None)
            if record is not None:
                self.files += 1
                self.input_bytes += record.size
            return record

    def is_new(self, chunk_id: bytes) -> bool:
        with self.lock:
            self.chunks += 1
            if chunk_id in self.seen:
                return False
            self.seen.add(chunk_id)
            self.new_chunks += 1
            return True

    def work(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # the run reports it; the other workers stop at their next file
            self.failure = exc
            self.records = iter(())

    def _work(self) -> None:
        """One worker: take files until none is left, filling a pack of its own."""
        chunker = Chunker(self.chunker_key, self.params)
        pack = PackBuilder(self.public_key, "floor")
        while (record := self.next_record()) is not None:
            compressible = compression.likely_compressible(record.relative_path)
            first = True
            pieces = self.folder.open_plaintext(record, reuse_buffer=True)
            for chunk in chunker.chunks(pieces, sqlite_hint=is_sqlite_name(record.relative_path)):
                chunk_id = primitives.chunk_id(self.id_key, chunk)
                if not self.is_new(chunk_id):
                    first = False  # as in BlobWriter.store_file: only the file's first chunk decides
                    continue
                payload, compressed = compression.compress(chunk) if compressible else (chunk, False)
                if first and compressible and not compressed:
                    # The importer's rule: a first chunk that does not compress ends trying.
                    compressible = False
                first = False
                blob = pack.reserve(chunk_id, len(payload), raw_length=len(chunk))
                pack.fill(blob, payload, compressed=compressed)
                if compressed and isinstance(payload, memoryview):
                    payload.release()
                if pack.size >= _PACK_TARGET:
                    self.ship(pack)
                    pack = PackBuilder(self.public_key, "floor")
        if pack.blobs:
            self.ship(pack)
        else:
            pack.release()

    def ship(self, pack: PackBuilder) -> None:
        self.in_flight.acquire()
        self.futures.append(self.uploads.submit(self.upload, pack))

    def upload(self, pack: PackBuilder) -> int:
        try:
            pack_id, parts = pack.finish()
            size = sum(len(part) for part in parts)
            if self.write:
                self.storage.put_parts(f"data/{pack_id}", parts)
            del parts
            pack.release()
            return size
        finally:
            self.in_flight.release()


def run_floor(
    folder_path: Path, scratch: Path, *, workers: int, write: bool, keys: tuple[bytes, bytes] | None = None
) -> FloorResult:
    """The floor of one folder; `keys` (the chunker's and the chunk IDs', random by default) fix its chunks."""
    folder = BackupFolder.open(folder_path, None)
    floor = _Floor(folder, scratch, write=write, keys=keys or (os.urandom(32), os.urandom(32)))
    threads = [threading.Thread(target=floor.work, name=f"floor-work-{n}") for n in range(workers)]
    usage_before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    floor.uploads.shutdown(wait=True)
    if floor.failure is not None:
        raise floor.failure
    stored = [future.result() for future in floor.futures]
    wall, usage = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime - usage_before.ru_utime + usage.ru_stime - usage_before.ru_stime
    return FloorResult(
        mode=WITH_WRITES if write else CPU_ONLY,
        workers=workers,
        wrote=write,
        files=floor.files,
        input_bytes=floor.input_bytes,
        chunks=floor.chunks,
        new_chunks=floor.new_chunks,
        stored_bytes=sum(stored),
        packs=len(stored),
        wall_seconds=wall,
        cpu_seconds=cpu,
    )


def run_disk_only(scratch: Path, total: int) -> FloorResult:
    """Write `total` bytes as packs of the floor's size, as `upload` writes them, with nothing else running."""
    storage = LocalStorage(scratch)
    pack = os.urandom(_PACK_TARGET)
    sizes = [min(_PACK_TARGET, total - offset) for offset in range(0, total, _PACK_TARGET)]
    usage_before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with ThreadPoolExecutor(max_workers=PACKS_IN_FLIGHT, thread_name_prefix="floor-upload") as uploads:
        for future in [
            uploads.submit(storage.put_parts, f"data/{number:08x}", [memoryview(pack)[:size]])
            for number, size in enumerate(sizes)
        ]:
            future.result()
    wall, usage = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime - usage_before.ru_utime + usage.ru_stime - usage_before.ru_stime
    return FloorResult(DISK_ONLY, PACKS_IN_FLIGHT, True, 0, total, 0, 0, total, len(sizes), wall, cpu)


def measure_floor(
    folder: Path, scratch: Path, mode: str, *, env: dict[str, str], log: Path, disk_bytes: int = 0
) -> FloorResult:
    """Run the floor in a process of its own (as each tool runs) and return what it measured."""
    options = {WITH_WRITES: [], CPU_ONLY: ["--no-write"], DISK_ONLY: ["--disk-only", str(disk_bytes)]}[mode]
    argv = [sys.executable, "-m", "benchmarks.ingest.floor", str(folder), str(scratch), *options]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    with open(log, "a") as output:
        output.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
    if done.returncode != 0:
        raise CofferError(f"the floor ({mode}) failed (exit {done.returncode}); see {log}")
    return FloorResult(**json.loads(done.stdout))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="floor", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder",
        type=Path,
        help="an unencrypted backup folder (the one holding Manifest.db); unread with --disk-only",
    )
    parser.add_argument("scratch", type=Path, help="where the packs go; created, must not exist")
    parser.add_argument("--workers", type=int, default=default_workers(), help="threads taking files")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--no-write", action="store_true", help="seal the packs but do not write them")
    modes.add_argument("--disk-only", type=int, metavar="BYTES", help="only write BYTES of packs")
    args = parser.parse_args(argv)
    args.scratch.mkdir(parents=True)
    if args.disk_only is not None:
        result = run_disk_only(args.scratch, args.disk_only)
    else:
        result = run_floor(args.folder, args.scratch, workers=args.workers, write=not args.no_write)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
