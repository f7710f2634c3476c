"""Which files are compressed: media by name are not, everything else is tried."""

from __future__ import annotations

from pathlib import PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from agent.pipeline.compression import INCOMPRESSIBLE_SUFFIXES, likely_compressible

_SEGMENT = st.text(alphabet="abcXYZ019._- ", min_size=1, max_size=12).filter(lambda part: part not in (".", ".."))
_SUFFIX = st.sampled_from([*sorted(INCOMPRESSIBLE_SUFFIXES), ".JPG", ".Heic", ".plist", ".db", ".", ""])


@given(folders=st.lists(_SEGMENT, max_size=4), stem=_SEGMENT, suffix=_SUFFIX)
def test_the_choice_is_the_suffix_rule_of_posix_paths(folders: list[str], stem: str, suffix: str) -> None:
    path = "/".join([*folders, stem + suffix])
    assert likely_compressible(path) == (PurePosixPath(path).suffix.lower() not in INCOMPRESSIBLE_SUFFIXES)


def test_media_is_stored_as_it_is_and_the_rest_is_tried() -> None:
    assert not likely_compressible("Media/DCIM/100APPLE/IMG_0001.HEIC")
    assert not likely_compressible("Library/SMS/Attachments/ab/clip.mov")
    assert likely_compressible("Library/SMS/sms.db")
    assert likely_compressible("Library/Preferences/.jpg")  # a hidden file named .jpg has no suffix
    assert likely_compressible("Media/photo.jpg.plist")
