"""What format version 2's padding and sealing cost: repository overhead and selective-restore downloads.

    .venv/bin/python -m benchmarks.bench_privacy_cost --size 2G

Generates the ingest benchmark's iOS-like data set (benchmarks/datagen.py), imports it into a fresh
repository, then reports, from the owner's side (keys in hand):
* pack padding: for every pack, its stored size against its unpadded length (header, blobs, trailer,
  footer: read from the sealed footer), in bytes and as a share of the repository;
* metadata objects (config, slots, index, snapshots, tombstones): their padded sizes against their
  plaintext lengths;
* a selective restore (`extract --categories photos`): bytes downloaded, split into packs and
  metadata, against the whole repository and against the photos packs alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.keys.slots import Passphrase
from agent.repository.pack import FOOTER_SIZE, HEADER_READ_SIZE, open_pack_key, read_footer
from agent.repository.repository import DATA_PREFIX, Repository
from agent.storage.base import ObjectInfo, Storage
from agent.storage.local import LocalStorage
from agent.storage.wrapper import StorageWrapper
from benchmarks.datagen import parse_size
from benchmarks.dataset.backup import generate

PASSPHRASE = "benchmark passphrase 1234"


class CountingStorage(StorageWrapper):
    """Counts the bytes read, per object kind (the first path component)."""

    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.read: dict[str, int] = {}

    def _count(self, name: str, size: int) -> None:
        kind = name.split("/", 1)[0]
        self.read[kind] = self.read.get(kind, 0) + size

    def get(self, name: str) -> bytes:
        data = self.inner.get(name)
        self._count(name, len(data))
        return data

    def get_range(self, name: str, offset: int, length: int) -> bytes:
        data = self.inner.get_range(name, offset, length)
        self._count(name, len(data))
        return data

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)


def _coffer(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "agent", *args], env=env, check=True, stdout=subprocess.DEVNULL)


def pack_padding(repository: Repository) -> tuple[int, int]:
    """(stored bytes, padding bytes) over every pack."""
    stored = padding = 0
    spaces = repository.spaces_by_tag()
    for info in repository.storage.list(DATA_PREFIX):
        tag = info.name.split("/")[1]
        key = open_pack_key(
            repository.storage.get_range(info.name, 0, HEADER_READ_SIZE),
            repository.keys.private_keys_for(spaces[tag]), tag, info.name,
        )
        footer = repository.storage.get_range(info.name, info.size - FOOTER_SIZE, FOOTER_SIZE)
        offset, length = read_footer(footer, key, info.name, info.size)
        stored += info.size
        padding += info.size - (offset + length + FOOTER_SIZE)
    return stored, padding


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="2G", help="data set size (e.g. 500M, 2G)")
    parser.add_argument("--category", default="photos", help="the category of the selective restore")
    parser.add_argument("--scratch", type=Path, help="scratch folder (default: a temporary one, removed)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="coffer-privacy-cost-"))
    try:
        folder, repo = scratch / "backup", scratch / "repo"
        summary = generate(folder, parse_size(args.size), 1)
        env = {
            **os.environ, "COFFER_REPOSITORY": str(repo), "COFFER_PASSWORD": PASSPHRASE,
            **{f"COFFER_{kind.upper()}_DIR": str(scratch / kind) for kind in ("state", "cache", "staging")},
        }
        os.environ.update({k: v for k, v in env.items() if k.startswith("COFFER_")})
        _coffer(env, "init")
        _coffer(env, "import", str(folder))
        repository = Repository.open(LocalStorage(repo), Passphrase(PASSPHRASE))
        total = sum(info.size for info in repository.storage.list(""))
        packs, padding = pack_padding(repository)
        category_packs = sum(i.size for i in repository.storage.list(f"{DATA_PREFIX}{repository.tag(args.category)}/"))

        from agent.archive.extractor import extract_snapshot

        counting = CountingStorage(LocalStorage(repo))
        extract_snapshot(Repository.open(counting, Passphrase(PASSPHRASE)), "latest", scratch / "out",
                         categories=[args.category], path_glob=None, progress=False)
        downloaded = sum(counting.read.values())
        print(f"data set: {summary.bytes / 1e9:.2f} GB in {summary.files} files")
        print(f"repository: {total:,} bytes; packs {packs:,} bytes, of which padding {padding:,} "
              f"({100 * padding / packs:.2f} % of packs, {100 * padding / total:.2f} % of the repository)")
        print(f"metadata objects: {total - packs:,} bytes ({100 * (total - packs) / total:.3f} % of the repository)")
        print(f"selective restore of {args.category}: downloaded {downloaded:,} bytes "
              f"({100 * downloaded / total:.1f} % of the repository; {args.category} packs are {category_packs:,} bytes); "
              f"by kind: {dict(sorted(counting.read.items()))}")
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
