"""Destinations: fields, scopes, credentials kept encrypted, test connection,
import of old storage-backend records, key_rotation."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ocs_transfer.exceptions import ConfigurationError, CredentialError, ProviderNotFoundError
from ocs_transfer.redact import Secret
from ocs_transfer.transfer.crypto import KeyRing
from ocs_transfer.transfer.destinations import Destinations
from ocs_transfer.transfer.ledger import Ledger
from ocs_transfer.transfer.models import DestinationRow

from .conftest import Rig, make_key, unique_root


def _stored(ledger: Ledger, name: str) -> dict[str, str]:
    with ledger.session() as session:
        row = session.scalars(select(DestinationRow).where(DestinationRow.name == name)).one()
        return dict(json.loads(row.credentials))


def test_fields_and_encrypted_credentials(rig: Rig) -> None:
    dest = rig.destinations.add(
        "team-archive", "faulty-memory", display_name="Team archive", path="/observatory/fits", layout="by_target",
        comment="2026 season", description="shared", delete_source=True, keep_days=30, scope="organization",
        owner_id="org-7", options={"root": unique_root("t")}, credentials={"token": "s3cr3t-token-value"},
    )  # fmt: skip
    assert dest.credential_fields == ("token",) and dest.keep_days == 30 and dest.scope == "organization"
    assert "s3cr3t" not in repr(dest)
    stored = _stored(rig.ledger, "team-archive")
    assert stored["token"].startswith("v1:k1:") and "s3cr3t" not in stored["token"]
    creds = rig.destinations.credentials("team-archive")
    assert isinstance(creds["token"], Secret) and creds["token"].reveal() == "s3cr3t-token-value"
    assert rig.destinations.get(dest.id) == rig.destinations.get("team-archive")


def test_edit_keeps_credentials_when_empty_and_provider_is_fixed(rig: Rig) -> None:
    rig.add_dest("e1", credentials={"token": "first-value", "password": "pw-value"})
    before = _stored(rig.ledger, "e1")
    rig.destinations.edit("e1", comment="changed", credentials={"token": "", "password": None})
    assert _stored(rig.ledger, "e1") == before
    rig.destinations.edit("e1", credentials={"token": "second-value"})
    creds = rig.destinations.credentials("e1")
    assert creds["token"].reveal() == "second-value" and creds["password"].reveal() == "pw-value"
    assert rig.destinations.get("e1").comment == "changed"
    with pytest.raises(ConfigurationError, match="provider of a destination cannot change"):
        rig.destinations.edit("e1", provider="memory")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scope": "galaxy"}, "scope"),
        ({"layout": "random"}, "layout"),
        ({"keep_days": 0}, "keep_days"),
        ({"colour": "red"}, "unknown destination field"),
    ],
)
def test_bad_fields_are_rejected(rig: Rig, fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        rig.destinations.add("bad", "memory", **fields)


def test_bad_name_duplicate_and_unknown_provider(rig: Rig) -> None:
    with pytest.raises(ConfigurationError, match="destination name"):
        rig.destinations.add("../x", "memory")
    rig.add_dest("dup")
    with pytest.raises(ConfigurationError, match="exists already"):
        rig.add_dest("dup")
    with pytest.raises(ProviderNotFoundError):
        rig.destinations.add("nope", "no-such-provider")


def test_usable_grouped_by_scope_without_disabled(rig: Rig) -> None:
    rig.add_dest("mine", scope="personal", owner_id="u1")
    rig.add_dest("theirs", scope="personal", owner_id="u2")
    rig.add_dest("org", scope="organization", owner_id="o1")
    rig.add_dest("org-off", scope="organization", owner_id="o1", enabled=False)
    rig.add_dest("org-inactive", scope="organization", owner_id="o1", active=False)
    rig.add_dest("proj", scope="project", owner_id="p1")
    rig.add_dest("proj-other", scope="project", owner_id="p2")
    grouped = rig.destinations.usable(user_id="u1", organization_ids=["o1"], project_ids=["p1"])
    assert {k: [d.name for d in v] for k, v in grouped.items()} == {
        "personal": ["mine"], "organization": ["org"], "project": ["proj"],
    }  # fmt: skip
    assert [d.name for d in rig.destinations.list(scope="organization")] == ["org", "org-inactive", "org-off"]


def test_connection_test_records_result_and_time(rig: Rig) -> None:
    rig.add_dest("probe")
    result = rig.destinations.test("probe")
    dest = rig.destinations.get("probe")
    assert result.ok and dest.last_test_ok is True and dest.last_test_at == result.checked_at.timestamp()
    # an undecryptable credential is a failed test, not a crash
    other = Destinations(rig.ledger, KeyRing.parse(f"k1:{make_key()}"))
    bad = other.test("probe")
    assert not bad.ok and "could not be decrypted" in bad.message
    assert other.get("probe").last_test_ok is False


def test_import_storage_backend_record(rig: Rig) -> None:
    record = {
        "storage_backend": "Dropbox OAuth2",
        "storage_backend_id": "faulty-memory",
        "storage_backend_token": "",
        "storage_backend_config": json.dumps({"root": unique_root("imp"), "token": "Zjyi908CUig321AAAA"}),
        "storage_backend_keep_days": "14",
        "storage_backend_desc": "Uploads for simulations",
        "storage_backend_active": "False",
    }
    dest = rig.destinations.import_storage_backend(record, owner_id="org-1")
    assert dest.name == "Dropbox-OAuth2" and dest.display_name == "Dropbox OAuth2"
    assert dest.keep_days == 14 and dest.active is False and dest.description == "Uploads for simulations"
    assert dest.provider == "faulty-memory" and "root" in dest.options and dest.scope == "organization"
    assert dest.credential_fields == ("token",)  # the provider's declared credential field
    assert rig.destinations.credentials(dest.id)["token"].reveal() == "Zjyi908CUig321AAAA"
    seafile = rig.destinations.import_storage_backend(
        {"storage_backend": "Seafile", "storage_backend_id": "faulty-memory", "storage_backend_token": "tok-123",
         "storage_backend_config": {"root": unique_root("sf")}}, name="seafile-old",
    )  # fmt: skip
    assert seafile.credential_fields == ("token",) and seafile.active is True
    with pytest.raises(ConfigurationError, match="storage_backend_id"):
        rig.destinations.import_storage_backend({"storage_backend": "x"})
    with pytest.raises(ConfigurationError, match="JSON"):
        rig.destinations.import_storage_backend({"storage_backend_id": "memory", "storage_backend_config": "{"})


def test_import_takes_the_providers_credential_fields_not_names_that_look_secret(rig: Rig) -> None:
    # (an option whose name has "token" in it: plugins/gdrive's test of token_url) a key that is
    # neither a credential nor an option of the provider and looks secret is refused, its value unshown
    bad = {"storage_backend_id": "faulty-memory",
           "storage_backend_config": {"root": unique_root("imp"), "refresh_token": "Zjyi908CUig321AAAA"}}
    with pytest.raises(ConfigurationError, match="'refresh_token' is neither a credential nor an option") as caught:
        rig.destinations.import_storage_backend(bad, name="undeclared")
    assert "Zjyi908CUig321AAAA" not in str(caught.value) and rig.destinations.find("undeclared") is None


def test_swapped_credentials_between_rows_fail(rig: Rig) -> None:
    rig.add_dest("r1", credentials={"token": "token-one-value"})
    rig.add_dest("r2", credentials={"token": "token-two-value"})
    one = _stored(rig.ledger, "r1")
    with rig.ledger.session() as session:
        row = session.scalars(select(DestinationRow).where(DestinationRow.name == "r2")).one()
        row.credentials = json.dumps(one)
    with pytest.raises(CredentialError) as info:
        rig.destinations.credentials("r2")
    assert "token-one" not in str(info.value)


def test_key_rotation(rig: Rig) -> None:
    key1 = make_key()
    ring1 = KeyRing.parse(f"k1:{key1}")
    old = Destinations(rig.ledger, ring1)
    secrets = {f"rot{i}": f"secret-value-{i}-xyz" for i in range(6)}
    for name, value in secrets.items():
        old.add(name, "memory", options={"root": unique_root(name)}, credentials={"token": value, "pw": value + "!"})
    ring2 = KeyRing.parse(f"k1:{key1},k2:{make_key()}", "k2")
    new = Destinations(rig.ledger, ring2)

    def all_readable() -> None:
        for name, value in secrets.items():
            assert new.credentials(name)["token"].reveal() == value
            assert new.credentials(name)["pw"].reveal() == value + "!"

    # interrupted midway: rotate only the first rows (batch boundary), every row still reads
    assert new.rotate_keys(batch=2) == 6
    assert new.kids_in_use() == {"k2"}
    all_readable()
    assert new.rotate_keys() == 0  # rerun: no-op


def test_key_rotation_interrupted(rig: Rig) -> None:
    key1, key2 = make_key(), make_key()
    old = Destinations(rig.ledger, KeyRing.parse(f"k1:{key1}"))
    values = {f"ri{i}": f"rotating-secret-{i}" for i in range(5)}
    for name, value in values.items():
        old.add(name, "memory", options={"root": unique_root(name)}, credentials={"token": value})
    new = Destinations(rig.ledger, KeyRing.parse(f"k1:{key1},k2:{key2}", "k2"))

    # stopped after two rows (each row is its own transaction, so a kill at any
    # instant leaves the same picture: some rows under k1, some under k2)
    assert new.rotate_keys(limit=2) == 2
    assert new.kids_in_use() == {"k1", "k2"}
    for name, value in values.items():  # every row decryptable mid-rotation
        assert new.credentials(name)["token"].reveal() == value
    assert new.rotate_keys() == 3
    assert new.rotate_keys() == 0
    assert new.kids_in_use() == {"k2"}
    # the old key can go now
    final = Destinations(rig.ledger, KeyRing.parse(f"k2:{key2}"))
    for name, value in values.items():
        assert final.credentials(name)["token"].reveal() == value


def test_connection_test_message_is_redacted(rig: Rig) -> None:
    from .conftest import FAULTS

    store = rig.add_dest("echo", credentials={"token": "echoed-secret-token"})
    FAULTS[store.root] = ["leak"]
    result = rig.destinations.test("echo")
    assert not result.ok and "***" in result.message and "echoed-secret" not in result.message
    assert "echoed-secret" not in rig.destinations.get("echo").last_test_message


def test_endpoint_allowlist(rig: Rig) -> None:
    from ocs_transfer.settings import Settings

    guarded = Destinations(rig.ledger, rig.keyring, settings=Settings(endpoint_allowlist=("files.example.org",)))
    with pytest.raises(ConfigurationError, match="ENDPOINT_ALLOWLIST"):
        guarded.add("ssrf", "memory", options={"root": "/x", "url": "http://169.254.169.254/latest"})
    rig.destinations.add("open", "memory", options={"root": unique_root("o")})
    with pytest.raises(ConfigurationError, match="ENDPOINT_ALLOWLIST"):
        guarded.edit("open", options={"root": "/x", "endpoint_url": "http://127.0.0.1:9000"})
    from ocs_transfer.transfer.destinations import check_endpoints

    allow = Settings(endpoint_allowlist=("a.example", "b.example:443"))
    check_endpoints({"url": "https://a.example/dav", "server": "b.example:443"}, allow)
    with pytest.raises(ConfigurationError):
        check_endpoints({"server": "b.example:80"}, allow)
    check_endpoints({"url": "http://anywhere"}, Settings())  # empty list: any host
