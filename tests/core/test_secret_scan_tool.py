"""The secrets scan itself (``ocs_transfer.testing.secrets``) finds a secret
in every form it travels in: a scan that missed a leak would make every
test built on it pass wrongly."""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs_transfer.redact import Secret
from ocs_transfer.testing.secrets import SecretScan

TOKEN = "sl.B" + "q9Zx/+Ab=cD_e-f~g" * 2


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    secret=st.text(min_size=8, max_size=60).filter(lambda s: len(s.encode()) >= 8),
    before=st.binary(max_size=7),
    after=st.binary(max_size=7),
    urlsafe=st.booleans(),
)
def test_a_secret_inside_base64_is_found_at_any_alignment(secret: str, before: bytes, after: bytes,
                                                           urlsafe: bool) -> None:  # fmt: skip
    scan = SecretScan()
    scan.add("the token", secret)
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    blob = encode(before + secret.encode() + after).decode()
    assert scan.findings(f"Authorization: Basic {blob}") == ["the token"]


@pytest.mark.parametrize(
    "shown",
    [TOKEN, quote(TOKEN, safe=""), quote_plus(TOKEN), "Basic " + base64.b64encode(b"user:" + TOKEN.encode()).decode()],
)
def test_check_fails_naming_the_secret_never_its_value(shown: str) -> None:
    scan = SecretScan()
    scan.add("the Dropbox refresh token", Secret(TOKEN))
    with pytest.raises(AssertionError) as caught:
        scan.check("the output of dest show", f"destination box: {shown}")
    assert "the output of dest show shows the Dropbox refresh token" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_check_passes_clean_text_and_objects_but_not_an_empty_scan() -> None:
    scan = SecretScan()
    with pytest.raises(AssertionError, match="no secret was registered"):
        scan.check("anything", "text")
    scan.add("the key", "k" * 20)
    scan.check("a store", object(), "k" * 19, Secret("k" * 20))  # a Secret's repr hides the value
    assert scan.checked == ["a store"]
    with pytest.raises(ValueError, match="too short"):
        scan.add("a pin", "1234")


def test_the_debug_log_is_scanned_when_the_scan_ends() -> None:
    scan = SecretScan()
    scan.add("the token", TOKEN)
    log = logging.getLogger("some.http.library")
    with pytest.raises(AssertionError, match="the DEBUG log shows the token"):
        with scan.debug_logging():
            log.debug("connection pool reused for %s", TOKEN)  # no credential-looking key: not redacted
    assert any("connection pool reused" in line for line in scan.log_lines)
    assert log.level == logging.NOTSET  # levels are restored


def test_what_the_redacting_filter_removes_is_not_a_finding() -> None:
    scan = SecretScan()
    scan.add("the token", TOKEN)
    with scan.debug_logging():
        logging.getLogger("urllib3.connectionpool").debug("headers={'Authorization': 'Bearer %s'}", TOKEN)
    [line] = [line for line in scan.log_lines if "headers=" in line]
    assert "***" in line and TOKEN not in line


def test_the_ledger_and_hook_payloads_are_read(tmp_path) -> None:
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE destinations (name TEXT, blob BLOB)"))
        conn.execute(sqlalchemy.text("INSERT INTO destinations VALUES ('box', :b)"), {"b": b"ciphertext"})
    scan = SecretScan()
    scan.add("the token", TOKEN)
    assert scan.check_ledger(url) == 1
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("INSERT INTO destinations VALUES ('leaky', :b)"), {"b": TOKEN.encode()})
    engine.dispose()
    with pytest.raises(AssertionError, match="the ledger's destinations table shows the token"):
        scan.check_ledger(url)
