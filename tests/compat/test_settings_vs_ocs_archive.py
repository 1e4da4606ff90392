"""Settings modules written for ocs_archive 0.5 keep working: the upper-case
names read the same values from the same environment, and
``get_tuple_from_environment`` splits the same way."""

from __future__ import annotations

from typing import Any

from ocs_transfer.settings import Settings

SETTINGS = r'''
import json, sys
from ocs_archive.settings import settings
from ocs_archive.settings.settings import get_tuple_from_environment

given = json.load(sys.stdin)
names = given["names"] or sorted(n for n in dir(settings) if n.isupper())
print(json.dumps({
    "values": {n: getattr(settings, n) for n in names},
    "tuples": {v: get_tuple_from_environment(f"T{i}", "x") for i, v in enumerate(given["tuples"])},
    "default": get_tuple_from_environment("UNSET_VARIABLE", " a, b ,c,"),
}))
'''

#: Defaults that differ on purpose (docs/ocs_archive.md, "Differences"): no silent dummy
#: store, and S3's endpoint follows the region (the ocs_archive-shaped S3Store keeps the old default).
DIFFERENT_DEFAULTS = {
    "FILESTORE_TYPE": ("dummy", "local"),
    "S3_ENDPOINT_URL": ("https://s3.us-west-2.amazonaws.com", None),
}

TUPLES = ["a,b", " a , b ", "a,,b", ",a,b,", "", "single"]


def run(ocs_archive_05: Any, env: dict[str, str]) -> tuple[Any, Any]:
    env = {**env, **{f"T{i}": v for i, v in enumerate(TUPLES)}}
    theirs = ocs_archive_05.run(SETTINGS, {"names": [], "tuples": TUPLES}, env=env)
    ours = ocs_archive_05.run_ours(SETTINGS, {"names": list(theirs["values"]), "tuples": TUPLES}, env=env)
    return theirs, ours


def test_defaults_and_helper_match(ocs_archive_05: Any) -> None:
    theirs, ours = run(ocs_archive_05, {})
    assert ours["tuples"] == theirs["tuples"] and ours["default"] == theirs["default"]
    assert theirs["values"]["REQUIRED_HEADERS"] == ours["values"]["REQUIRED_HEADERS"]
    assert "DAY-OBS" in ours["values"]["REQUIRED_HEADERS"]
    for name, (their_default, our_default) in DIFFERENT_DEFAULTS.items():
        assert (theirs["values"].pop(name), ours["values"].pop(name)) == (their_default, our_default)
    assert ours["values"] == theirs["values"]
    assert len(ours["values"]) > 40


def test_values_from_the_environment_match(ocs_archive_05: Any) -> None:
    env = {"THUMBNAIL_FRAME_BASENAME_KEY": "frame", "REQUIRED_HEADERS": "PROPID, DATE-OBS", "DAYS_UNTIL_PUBLIC": "30",
           "FILETYPE_MAPPING_OVERRIDES": "{'.fits': 'my.module.MyFile'}", "FILESTORE_TYPE": "s3",
           "S3_ENDPOINT_URL": "http://127.0.0.1:9000", "BUCKET": "archive", "REQNUM": "x",
           "REQUEST_ID_KEY": "REQID"}
    theirs, ours = run(ocs_archive_05, env)
    assert ours["values"] == theirs["values"]
    assert ours["values"]["THUMBNAIL_FRAME_BASENAME_KEY"] == "frame"
    assert ours["values"]["INTEGER_TYPES"][0] == "REQID"


def test_the_new_thumbnail_variable_name_stays_an_alias() -> None:
    assert Settings.from_env({"THUMBNAIL_FRAME_FILENAME_KEY": "f"}).thumbnail_frame_basename_key == "f"
    both = {"THUMBNAIL_FRAME_FILENAME_KEY": "f", "THUMBNAIL_FRAME_BASENAME_KEY": "b"}
    assert Settings.from_env(both).thumbnail_frame_basename_key == "b"  # ocs_archive's name wins
