from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocs_transfer.exceptions import ConfigurationError
from ocs_transfer.settings import ENV_VARIABLES, Settings, parse_mapping, parse_tuple

README = Path(__file__).resolve().parents[2] / "README.md"

OCS_ARCHIVE_VARIABLES = [
    "FILETYPE_MAPPING_OVERRIDES", "HEADER_BLACKLIST", "REQUIRED_HEADERS", "REQUIRED_THUMBNAIL_METADATA",
    "NULL_HEADER_VALUES", "CALIBRATION_TYPES", "PUBLIC_PROPOSALS", "PRIVATE_PROPOSALS", "PRIVATE_PROPOSAL_TAGS",
    "PUBLIC_PROPOSAL_TAGS", "DAYS_UNTIL_PUBLIC", "PRIVATE_FILE_TYPES", "RELATED_FRAME_KEYS", "FILESTORE_TYPE",
    "FILESYSTEM_STORAGE_ROOT_DIR", "FILESYSTEM_STORAGE_BASE_URL", "BUCKET", "S3_ENDPOINT_URL",
    "S3_SIGNATURE_VERSION", "S3_DAYS_TO_IA_STORAGE", "S3_ADDRESSING_STYLE", "AWS_DEFAULT_REGION",
    "OBSERVATION_DATE_KEY", "OBSERVATION_DAY_KEY", "OBSERVATION_END_TIME_KEY", "REDUCTION_LEVEL_KEY",
    "EXPOSURE_TIME_KEY", "INSTRUMENT_ID_KEY", "SITE_ID_KEY", "TELESCOPE_ID_KEY", "OBSERVATION_ID_KEY",
    "CONFIGURATION_ID_KEY", "PRIMARY_OPTICAL_ELEMENT_KEY", "TARGET_NAME_KEY", "REQUEST_ID_KEY",
    "REQUESTGROUP_ID_KEY", "CONFIGURATION_TYPE_KEY", "PROPOSAL_ID_KEY", "CATALOG_TARGET_FRAME_KEY",
    "PUBLIC_DATE_KEY", "RA_KEY", "DEC_KEY", "RADIUS_KEY",
]  # fmt: skip


def test_every_ocs_archive_variable_is_read() -> None:
    missing = [v for v in OCS_ARCHIVE_VARIABLES if v not in ENV_VARIABLES]
    assert missing == []


def test_every_variable_is_documented_in_readme() -> None:
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", README.read_text(), flags=re.M))
    assert set(ENV_VARIABLES) - documented == set()


def test_defaults_need_no_environment() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings().required_headers == (
        "PROPID", "DATE-OBS", "DAY-OBS", "INSTRUME", "SITEID", "TELID", "OBSTYPE", "BLKUID"
    )  # fmt: skip


def test_values_are_parsed_like_ocs_archive() -> None:
    s = Settings.from_env(
        {
            "HEADER_BLACKLIST": " HISTORY, COMMENT ,",
            "DAYS_UNTIL_PUBLIC": "30",
            "FILETYPE_MAPPING_OVERRIDES": '{".fits.fz": "my_obs.files.MyFitsFile"}',
            "TARGET_NAME_KEY": "TARGNAME",
        }
    )
    assert s.header_blacklist == ("HISTORY", "COMMENT")
    assert s.days_until_public == 30
    assert s.filetype_mapping_overrides == {".fits.fz": "my_obs.files.MyFitsFile"}
    assert s.target_name_key == "TARGNAME"


def test_python_dict_literal_overrides_still_work_without_eval() -> None:
    s = Settings.from_env({"FILETYPE_MAPPING_OVERRIDES": "{'.x': 'a.B'}"})
    assert s.filetype_mapping_overrides == {".x": "a.B"}
    with pytest.raises(ConfigurationError, match="FILETYPE_MAPPING_OVERRIDES"):
        Settings.from_env({"FILETYPE_MAPPING_OVERRIDES": "__import__('os').system('true')"})


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("DAYS_UNTIL_PUBLIC", "a year", "a whole number"),
        ("S3_DAYS_TO_IA_STORAGE", "", "a whole number"),
        ("FILETYPE_MAPPING_OVERRIDES", "[1, 2]", "JSON object"),
        ("FILETYPE_MAPPING_OVERRIDES", "{'.x': 3}", "JSON object"),
    ],
)
def test_malformed_value_names_variable_and_expectation(var: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({var: value})
    assert var in str(info.value) and expected in str(info.value)


def test_secret_setting_never_in_repr_or_error() -> None:
    s = Settings.from_env({"OBSERVATION_PORTAL_API_TOKEN": "tok-very-secret"})
    assert s.observation_portal_api_token == "tok-very-secret"
    assert "tok-very-secret" not in repr(s)


def test_import_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    code = "import os; os.environ = None; import ocs_transfer, ocs_transfer.settings, ocs_transfer.plugins"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters=", \x00"), min_size=1), max_size=8))
def test_parse_tuple_round_trips(items: list[str]) -> None:
    assert parse_tuple(",".join(items)) == tuple(items)


@given(st.dictionaries(st.text(min_size=1), st.text()))
def test_parse_mapping_round_trips_json(mapping: dict[str, str]) -> None:
    import json

    assert parse_mapping(json.dumps(mapping)) == mapping


def test_every_field_has_a_variable_or_is_documented_as_code_only() -> None:
    assert all("env" in f.metadata for f in attrs.fields(Settings))
