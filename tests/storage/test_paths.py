"""Path safety: key_traversal_rejected (RELIABILITY.md) and hostile-but-legal
names round-tripping."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from ocs_transfer.exceptions import DoNotRetryError, UnsafePathError
from ocs_transfer.storage.paths import (
    MAX_COMPONENT_BYTES,
    MAX_PATH_BYTES,
    join_under,
    safe_component,
    safe_path,
)
from ocs_transfer.testing.data import HOSTILE_NAMES, TRAVERSAL_PATHS
from ocs_transfer.testing.fuzz import fuzz_settings

HOSTILE_LEGAL = 'hello? sausage/êé/Hello, 世界/ " \' @ < > & ? + ≠/z.txt'

#: RELIABILITY.md, key_traversal_rejected (the symlink case is tested below),
#: plus more forms of the same attacks.
TRAVERSAL = [
    *TRAVERSAL_PATHS,
    "c:x",
    "..%2fx",
    "C%3a/x",
    "a/C:x",
    "a/b/z:",
    "a/\x00",
    "a\rb",
    "tab\there",
    "c1\x85",
    "é" * (MAX_COMPONENT_BYTES // 2 + 1),  # 2 bytes each in UTF-8
    "a/...",
    "a/ .. ",
    "",
    "   ",
    "x\ud800y",
    "%25252525252e/x",
    # control characters that appear only after percent-decoding (some servers decode)
    "a%00b",
    "x%0ay",
    "d/x%0Dy",
    "tab%09here",
    "x%2500y",
]


@pytest.mark.parametrize("bad", TRAVERSAL, ids=repr)
def test_key_traversal_rejected_safe_path(bad: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_path(bad)


@pytest.mark.parametrize("bad", TRAVERSAL, ids=repr)
def test_key_traversal_rejected_join_under(bad: str, tmp_path: Path) -> None:
    before = sorted(tmp_path.iterdir())
    with pytest.raises(UnsafePathError):
        join_under(tmp_path, bad)
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "bad",
    ["../x", "/etc/x", "a/../../b", "..\\x", "C:\\x", "%2e%2e/", "%2e%2e", "x\x00", "a\x1bb", "..", ".", "", " ",
     "a" * 256, "\\\\server", "%252e%252e", "a%00b", "x%0ay", "x%257fy"],
    ids=repr,
)
def test_key_traversal_rejected_safe_component(bad: str) -> None:
    with pytest.raises(UnsafePathError) as info:
        safe_component(bad)
    # One error type for callers: a ValueError that must not be retried.
    assert isinstance(info.value, ValueError) and isinstance(info.value, DoNotRetryError)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_legal_path_round_trips(name: str) -> None:
    assert safe_path(name) == name
    for part in name.split("/"):
        assert safe_component(part) == part


def test_separators_inside_a_component_are_replaced() -> None:
    assert safe_component("M31/M32") == "M31_M32"
    assert safe_component("C/2022 E3 (ZTF)") == "C_2022 E3 (ZTF)"
    assert safe_component("a\\b") == "a_b"
    assert safe_component("N/A") == "N_A"


def test_unicode_is_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "êé/Hello, 世界")
    assert decomposed != "êé/Hello, 世界"
    assert safe_path(decomposed) == "êé/Hello, 世界"
    assert safe_component(unicodedata.normalize("NFD", "Saturn ê")) == "Saturn ê"


def test_limits_are_bytes_not_characters() -> None:
    assert safe_component("é" * (MAX_COMPONENT_BYTES // 2)) == "é" * (MAX_COMPONENT_BYTES // 2)
    long_ok = "/".join(["d" * 200] * 5)
    assert len(long_ok.encode()) <= MAX_PATH_BYTES
    assert safe_path(long_ok) == long_ok


def test_percent_signs_that_decode_harmlessly_are_names() -> None:
    for name in ["100%", "50% done", "%41BC", "a%20b", "%ff"]:
        assert safe_component(name) == name
        assert safe_path(f"dir/{name}") == f"dir/{name}"


def test_root_and_trailing_slash() -> None:
    assert safe_path("", allow_root=True) == ""
    assert safe_path("a/b/") == "a/b"
    with pytest.raises(UnsafePathError):
        safe_path("a/b//")


def test_not_text_is_rejected() -> None:
    with pytest.raises(UnsafePathError):
        safe_path(b"a/b")  # type: ignore[arg-type]


def _join(root: Path, path: str, known_root: bool) -> Path:
    """join_under as a caller that resolved the root itself (a store) calls it, or as one that did not."""
    return join_under(root, path, real_root=os.path.realpath(root) if known_root else None)


@pytest.mark.parametrize("known_root", [False, True])
def test_join_under_rejects_symlink_leaving_root(tmp_path: Path, known_root: bool) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"x")
    (root / "escape").symlink_to(outside)
    (root / "file-link").symlink_to(outside / "secret")
    (root / "inner").mkdir()
    (root / "inner" / "up").symlink_to(outside)
    for bad in ("escape/secret", "escape/new-file", "file-link", "inner/up/secret", "inner/up"):
        with pytest.raises(UnsafePathError):
            _join(root, bad, known_root)


@pytest.mark.parametrize("known_root", [False, True])
def test_join_under_allows_links_inside_root_and_new_paths(tmp_path: Path, known_root: bool) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert _join(tmp_path, "alias/x.fits", known_root) == tmp_path / "alias" / "x.fits"
    assert _join(tmp_path, "not/yet/there.fits", known_root) == tmp_path / "not" / "yet" / "there.fits"
    assert _join(tmp_path, HOSTILE_LEGAL, known_root) == tmp_path / HOSTILE_LEGAL
    # a root that is itself reached through a link is fine
    (tmp_path / "root-link").symlink_to(tmp_path / "real")
    assert _join(tmp_path / "root-link", "a", known_root) == tmp_path / "root-link" / "a"


def test_hostile_name_round_trips_on_disk(tmp_path: Path) -> None:
    target = join_under(tmp_path, safe_path(HOSTILE_LEGAL))
    target.parent.mkdir(parents=True)
    target.write_bytes(b"data")
    found = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert found == [HOSTILE_LEGAL]


# -- properties ------------------------------------------------------------------------

ROOT = "/srv/store-root"


def _stays_under_root(relative: str) -> bool:
    joined = os.path.normpath(os.path.join(ROOT, relative))
    return joined.startswith(ROOT + os.sep)


@fuzz_settings(300)
@given(st.text(max_size=300))
@example("../x")
@example("a/../../b")
@example("%2e%2e/x")
def test_safe_path_output_is_safe_or_rejected(text: str) -> None:
    try:
        out = safe_path(text)
    except UnsafePathError:
        return
    assert out == unicodedata.normalize("NFC", out)
    assert "\\" not in out and "\x00" not in out
    assert all(unicodedata.category(c) != "Cc" for c in out)
    assert not out.startswith("/")
    assert all(p not in ("", ".", "..") for p in out.split("/"))
    assert all(len(p.encode()) <= MAX_COMPONENT_BYTES for p in out.split("/"))
    assert len(out.encode()) <= MAX_PATH_BYTES
    assert _stays_under_root(out)
    assert safe_path(out) == out  # idempotent


@fuzz_settings(300)
@given(st.text(max_size=300))
@example("M31/M32")
@example("..\\..\\x")
def test_safe_component_output_is_one_safe_name_or_rejected(text: str) -> None:
    try:
        out = safe_component(text)
    except UnsafePathError:
        return
    assert "/" not in out and "\\" not in out
    assert safe_path(out) == out
    assert _stays_under_root(out)
    assert os.path.dirname(os.path.join(ROOT, out)) == ROOT
    assert safe_component(out) == out  # idempotent


#: Printable characters except separators and "%": any NFC name made of them
#: that is not only dots and spaces must round-trip unchanged.
_legal_chars = st.characters(
    blacklist_categories=("Cc", "Cs"),
    blacklist_characters="/\\%",
)


@given(st.lists(st.text(_legal_chars, min_size=1, max_size=40), min_size=1, max_size=6))
def test_legal_names_round_trip_unchanged(parts: list[str]) -> None:
    parts = [unicodedata.normalize("NFC", p) for p in parts]
    assume(all(p.replace(".", "").strip() != "" for p in parts))
    assume(not any(p[:1].isascii() and p[:1].isalpha() and p[1:2] == ":" for p in parts))
    assume(all(len(p.encode()) <= MAX_COMPONENT_BYTES for p in parts))
    path = "/".join(parts)
    assert safe_path(path) == path
    for p in parts:
        assert safe_component(p) == p


def test_the_length_limits_are_exact() -> None:
    """255 bytes per component and 1024 per path are allowed, one more is not."""
    assert safe_component("a" * MAX_COMPONENT_BYTES) == "a" * MAX_COMPONENT_BYTES
    assert safe_path("é" * 127 + "a") == "é" * 127 + "a"  # 255 bytes of UTF-8
    with pytest.raises(UnsafePathError, match="256 bytes of UTF-8; the limit is 255"):
        safe_component("a" * 256)
    longest = "/".join(["b" * 255] * 3 + ["b" * 254]) + "/c"  # 1024 bytes
    assert len(longest) == MAX_PATH_BYTES and safe_path(longest) == longest
    with pytest.raises(UnsafePathError, match="1025 bytes of UTF-8; the limit is 1024"):
        safe_path(longest + "c")


def test_percent_decoding_is_followed_exactly_three_levels_deep() -> None:
    """A name encoded three times over still decodes to harmless text and is a
    name; four times is refused whatever it means."""
    assert safe_component("%252541") == "%252541"  # %2541 -> %41 -> A
    with pytest.raises(UnsafePathError, match="percent-encoded 4 times or more"):
        safe_component("%25252541")
    with pytest.raises(UnsafePathError, match="traversal"):
        safe_path("%25252e%25252e/x")  # three levels deep, it is '..'


def test_messages_name_the_rule_and_show_a_bounded_name() -> None:
    with pytest.raises(UnsafePathError) as short:
        safe_path("x\x00")
    assert str(short.value) == "path 'x\\x00' contains a NUL character"  # a short name shown as it is
    with pytest.raises(UnsafePathError, match=r"control character U\+001B"):
        safe_path("a\x1bb")
    with pytest.raises(UnsafePathError) as info:
        safe_path("a" * 300 + "\x00")
    shown = str(info.value)
    assert "a" * 77 + "..." in shown and "a" * 78 not in shown
    for length, whole in ((80, True), (81, False)):  # names up to 80 characters are shown whole
        name = "a" * (length - 1) + "\x00"
        with pytest.raises(UnsafePathError) as info:
            safe_path(name)
        assert (repr(name) in str(info.value)) is whole, (length, str(info.value))
