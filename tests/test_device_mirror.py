"""The device-side tree a backup builds in memory: the same answers as a naive tree of prefix scans (the
model), for any sequence of the operations a device sends; and device paths refused exactly as
pymobiledevice3 refuses them on disk, however often a directory comes back."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymobiledevice3.safe_paths import DevicePathError, resolve_device_path

from agent.device.link import MirrorDeviceLink
from agent.device.mirror import BackupMirror, MirrorEntry, MirrorError

NAMES = ["a", "b", "a/b", "a/c", "b/a", "a/b/c", "a/b/d", "c"]


class Model:
    """A tree as a set of paths (directories marked), every operation a scan over all of it."""

    def __init__(self) -> None:
        self.dirs: set[str] = {""}
        self.files: set[str] = set()

    def all(self) -> set[str]:
        return self.dirs | self.files

    def below(self, name: str) -> set[str]:
        return {p for p in self.all() if p == name or p.startswith(name + "/")}

    def parent(self, name: str) -> str:
        return name.rpartition("/")[0]

    def mkdir(self, name: str) -> None:
        parts = name.split("/")
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            if prefix in self.files:
                raise MirrorError(20, "Not a directory", prefix)
            self.dirs.add(prefix)

    def put(self, name: str) -> None:
        if self.parent(name) not in self.dirs:
            raise MirrorError(2, "No such file or directory", name)
        self.remove(name)
        self.files.add(name)

    def remove(self, name: str) -> None:
        for path in self.below(name):
            self.dirs.discard(path)
            self.files.discard(path)

    def move(self, src: str, dst: str) -> None:
        if src not in self.all() or src == dst:
            return
        if dst.startswith(src + "/") or src.startswith(dst + "/"):
            raise MirrorError(22, "Invalid argument", dst)  # the source would be lost: refused, nothing changes
        self.remove(dst)
        self.mkdir(self.parent(dst)) if self.parent(dst) else None
        moved = self.below(src)
        was_dir = {p for p in moved if p in self.dirs}
        self.remove(src)
        for path in moved:
            (self.dirs if path in was_dir else self.files).add(dst + path[len(src) :])

    def listdir(self, name: str) -> set[str]:
        return {p for p in self.all() if p and self.parent(p) == name}


operations = st.lists(
    st.tuples(st.sampled_from(["mkdir", "put", "remove", "move"]), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(steps=operations)
def test_the_mirror_answers_as_the_naive_tree_does(steps: list[tuple[str, str, str]]) -> None:
    mirror, model = BackupMirror(), Model()
    for operation, name, other in steps:
        outcomes = []
        for tree in (mirror, model):
            try:
                if operation == "mkdir":
                    tree.mkdir(name)
                elif operation == "put":
                    tree.put(name, MirrorEntry(is_dir=False)) if tree is mirror else tree.put(name)  # type: ignore[call-arg]
                elif operation == "remove":
                    tree.remove(name)
                else:
                    tree.move(name, other)
                outcomes.append(None)
            except MirrorError as exc:
                outcomes.append(exc.errno)
        assert outcomes[0] == outcomes[1], (operation, name, other)
        assert set(mirror.entries) == model.all()
        assert {n for n, e in mirror.entries.items() if e.is_dir} == model.dirs
        for directory in model.dirs:
            prefix = directory + "/" if directory else ""
            assert {prefix + child for child in mirror.listdir(directory)} == model.listdir(directory)


def test_a_whole_folder_moves_with_everything_in_it_and_the_source_is_gone() -> None:
    mirror = BackupMirror()
    for name in ("u/Snapshot/00/" + "0" * 40, "u/Snapshot/01/" + "1" * 40, "u/Snapshot/Manifest.db"):
        mirror.put_data(name, b"x")
    mirror.move("u/Snapshot", "u/Done")
    assert sorted(mirror.listdir("u")) == ["Done"]
    assert sorted(mirror.listdir("u/Done")) == ["00", "01", "Manifest.db"]
    assert mirror.read("u/Done/01/" + "1" * 40) == b"x"
    assert mirror.get("u/Snapshot/00") is None
    assert [e.size for e in mirror.remove("u/Done/00")] == [1, 0]  # the file, then its directory


HOSTILE_PARTS = ["..", ".", "", "a", "C:", "c:x", "NUL", "con.txt", "\\", "a\\..", "x\0y", "0" * 40, "f" * 40,
                 "F" * 40, "0" * 39]


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.sampled_from(HOSTILE_PARTS), min_size=1, max_size=4), absolute=st.booleans(),
       repeat=st.integers(1, 3))  # fmt: skip
def test_device_paths_are_refused_exactly_as_pymobiledevice3_refuses_them(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str], absolute: bool, repeat: int
) -> None:
    root = tmp_path_factory.mktemp("root")
    link = MirrorDeviceLink(None, root, types.SimpleNamespace(mirror=BackupMirror()), "udid")  # type: ignore[arg-type]
    path = ("/" if absolute else "") + "/".join(parts)
    try:
        resolve_device_path(root.resolve(), path)
        expected_refusal = False
    except DevicePathError:
        expected_refusal = True
    # A first path in the same directory with a clean name, so the directory is known when `path` comes.
    sibling = path.rpartition("/")[0] + "/" + "a" * 40 if "/" in path else "a" * 40
    for candidate in (sibling, *[path] * repeat):
        refused = False
        try:
            link._checked(candidate)
        except DevicePathError:
            refused = True
        if candidate == path:
            assert refused == expected_refusal, path


def test_a_link_inside_the_root_that_points_out_is_still_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    link = MirrorDeviceLink(None, root, types.SimpleNamespace(mirror=BackupMirror()), "udid")  # type: ignore[arg-type]
    with pytest.raises(DevicePathError):
        link._checked("out/" + "0" * 40)
    with pytest.raises(DevicePathError):
        link._checked("out/" + "0" * 40)  # the directory was not remembered as checked
