"""Layouts turn header data plus context into safe relative paths."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from ocs_transfer.exceptions import ConfigurationError, FileSpecificationError, UnsafePathError
from ocs_transfer.storage.layouts import BUILTIN_LAYOUTS, FIELDS, Layout, get_layout


@attrs.define
class Header:
    """Test data shaped like a DataFile's header data."""

    site: str | None = "coj"
    instrument: str | None = "kb05"
    day: str | None = "20150219"
    target: str | None = "M31"
    proposal: str | None = "LCO2015A-001"
    reduction_level: Any = 91

    def get_site_id(self) -> str | None:
        return self.site

    def get_instrument_id(self) -> str | None:
        return self.instrument

    def get_observation_day(self) -> str | None:
        return self.day

    def get_target_name(self) -> str | None:
        return self.target

    def get_proposal_id(self) -> str | None:
        return self.proposal

    def get_reduction_level(self) -> Any:
        return self.reduction_level


@attrs.define
class OpenFile:
    basename: str = "coj1m011-kb05-20150219-0125-e91"
    extension: str = ".fits.fz"


@attrs.define
class DataFileData:
    """Test data shaped like a DataFile (header getters + open_file)."""

    header: Header = attrs.Factory(Header)
    open_file: OpenFile = attrs.Factory(OpenFile)

    def get_header_data(self) -> Header:
        return self.header


FILE = "coj1m011-kb05-20150219-0125-e91.fits.fz"


def test_builtin_layouts() -> None:
    f = DataFileData()
    assert get_layout("flat").path_for(f) == FILE
    assert get_layout("by_target").path_for(f) == f"M31/{FILE}"
    assert get_layout(None).path_for(f) == f"M31/{FILE}"  # the default
    assert get_layout("by_project_and_target").path_for(f) == f"LCO2015A-001/M31/{FILE}"
    assert get_layout("archive").path_for(f) == f"coj/kb05/20150219/processed/{FILE}"


@pytest.mark.parametrize(("level", "kind"), [(0, "raw"), ("0", "raw"), (91, "processed"), (11, "processed")])
def test_archive_raw_or_processed(level: Any, kind: str) -> None:
    f = DataFileData(Header(reduction_level=level))
    assert get_layout("archive").path_for(f) == f"coj/kb05/20150219/{kind}/{FILE}"


def test_context_overrides_header_values() -> None:
    f = DataFileData()
    ctx = {"target": "NGC 224", "project": "my project"}
    assert get_layout("by_project_and_target").path_for(f, ctx) == f"my project/NGC 224/{FILE}"


def test_context_supplies_missing_values() -> None:
    f = DataFileData(Header(target=None, proposal=""))
    with pytest.raises(FileSpecificationError, match=r"target name.*--target"):
        get_layout("by_target").path_for(f)
    assert get_layout("by_target").path_for(f, {"target": "flat field"}) == f"flat field/{FILE}"


def test_header_values_become_single_safe_components() -> None:
    f = DataFileData(Header(target="C/2022 E3 (ZTF)", proposal="a\\b"))
    assert get_layout("by_project_and_target").path_for(f) == f"a_b/C_2022 E3 (ZTF)/{FILE}"


@pytest.mark.parametrize("target", ["..", "../../etc", "/etc/passwd", "C:\\x", "%2e%2e", "x\x00", "a\nb", "t" * 300])
def test_hostile_header_values_are_rejected(target: str) -> None:
    with pytest.raises(UnsafePathError, match="target"):
        get_layout("by_target").path_for(DataFileData(Header(target=target)))


def test_hostile_context_values_are_rejected() -> None:
    with pytest.raises(UnsafePathError):
        get_layout("by_target").path_for(DataFileData(), {"target": "../../x"})


def test_hostile_but_legal_values_round_trip() -> None:
    f = DataFileData(Header(target='Hello, 世界 " \' @ < > & ? + ≠'), OpenFile("z êé", ".txt"))
    assert get_layout("by_target").path_for(f) == 'Hello, 世界 " \' @ < > & ? + ≠/z êé.txt'


def test_user_template() -> None:
    layout = get_layout("{site}/{instrument}/{day}/{target}/{filename}")
    assert layout.fields == ("site", "instrument", "day", "target", "filename")
    f = DataFileData()
    assert layout.path_for(f) == f"coj/kb05/20150219/M31/{FILE}"
    mixed = get_layout("{year}/{month}/{site}-{instrument}/{basename}{extension}")
    assert mixed.path_for(f) == f"2015/02/coj-kb05/{FILE}"
    assert get_layout("level-{reduction_level}/{kind}/{filename}").path_for(f) == f"level-91/processed/{FILE}"


def test_user_template_with_context_fields() -> None:
    layout = get_layout("{user}/{filename}", context_fields=["user"])
    assert layout.path_for(DataFileData(), {"user": "ann"}) == f"ann/{FILE}"
    with pytest.raises(ConfigurationError, match="user"):
        layout.path_for(DataFileData())


def test_unknown_field_lists_available_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_layout("{site}/{telescope}/{filename}")
    message = str(info.value)
    assert "telescope" in message
    for field in FIELDS:
        assert field in message


@pytest.mark.parametrize(
    "template",
    [
        "{target.__class__}/{filename}",
        "{target[0]}/{filename}",
        "{target!r}/{filename}",
        "{target:>10}/{filename}",
        "{}/{filename}",
        "{0}",
        "{target",
        "../{filename}",
        "/abs/{filename}",
        "a//{filename}",
        "C:\\{filename}",
        "no-fields-at-all",
    ],
)
def test_bad_templates_are_configuration_errors(template: str) -> None:
    with pytest.raises(ConfigurationError):
        get_layout(template)


def test_unknown_layout_name() -> None:
    with pytest.raises(ConfigurationError) as info:
        get_layout("by_telescope")
    for name in BUILTIN_LAYOUTS:
        assert name in str(info.value)


def test_names_are_forgiving_and_layouts_pass_through() -> None:
    assert get_layout("by-target") is BUILTIN_LAYOUTS["by_target"]
    assert get_layout(" Archive ") is BUILTIN_LAYOUTS["archive"]
    custom = Layout("mine", "{target}/{filename}")
    assert get_layout(custom) is custom


def test_bad_reduction_level() -> None:
    with pytest.raises(FileSpecificationError, match="reduction level"):
        get_layout("archive").path_for(DataFileData(Header(reduction_level="high")))


def test_archive_thumbnails_and_real_data_files(examples_dir: Any) -> None:
    """With the real data-file classes: thumbnails go under thumbnails/, and
    the archive layout agrees with each data file's own file-store path."""
    input_ = pytest.importorskip("ocs_transfer.input.filefactory", reason="needs ocs_transfer.input")
    from ocs_transfer.input import File, ThumbnailFile  # type: ignore[attr-defined, unused-ignore]
    from ocs_transfer.settings import Settings

    jpg = examples_dir / "tfn0m419-sq32-20240426-0097-e91-small.jpg"
    metadata = {"frame_basename": "tfn0m419-sq32-20240426-0097-e91", "size": "small",
                "DATE-OBS": "2024-04-26T21:12:00", "DAY-OBS": "20240426", "INSTRUME": "sq32",
                "SITEID": "tfn", "TELID": "0m4c"}
    settings = Settings()
    with open(jpg, "rb") as f:
        thumb = ThumbnailFile(File(f, jpg, settings=settings), metadata, settings=settings)
        assert get_layout("archive").path_for(thumb) == f"tfn/sq32/20240426/thumbnails/{jpg.name}"
        assert get_layout("archive").path_for(thumb) == thumb.get_filestore_path()
    for fits in sorted(examples_dir.glob("*.fits*")):
        with input_.open_datafile(fits, settings=settings) as data_file:
            assert get_layout("archive").path_for(data_file) == data_file.get_filestore_path()
