"""The ocs_archive-shaped stores (ocs_transfer.storage.compat) answer the edge
cases as ocs_archive 0.5.0's do: a missing file, the dummy store's answers,
an unknown FILESTORE_TYPE. Both libraries run the same script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EDGES = r'''
import json, sys
from ocs_archive.input.file import File
from ocs_archive.input.filefactory import FileFactory
from ocs_archive.storage.filestore import FileStoreSpecificationError
from ocs_archive.storage.filestorefactory import FileStoreFactory

given = json.load(sys.stdin)
out = {}
store = FileStoreFactory.get_file_store_class()()
with store.get_fileobj("no/such/file.fits") as fileobj:
    out["get_fileobj(missing)"] = repr(fileobj)
store.delete_file("no/such/file.fits", "v1")
out["delete_file(missing)"] = "ok"
try:
    store.get_file_size("no/such/file.fits")
except FileNotFoundError:
    out["get_file_size(missing)"] = "FileNotFoundError"
else:
    out["get_file_size(missing)"] = "no error"
with open(given["path"], "rb") as fp:
    open_file = File(fp, given["path"])
    data_file = FileFactory.get_datafile_class_for_extension(open_file.extension)(open_file)
    dummy = FileStoreFactory.get_file_store_class("dummy")()
    out["dummy"] = [dummy.store_file(data_file), dummy.get_url("p", "v", 60), dummy.get_file_size("p")]
    with dummy.get_fileobj("p") as f:
        out["dummy"].append(f.read().decode())
try:
    FileStoreFactory.get_file_store_class("no-such-type")
except FileStoreSpecificationError:
    out["unknown type"] = "FileStoreSpecificationError"
print(json.dumps(out))
'''


def test_edges_match(ocs_archive_05: Any, examples_dir: Path, tmp_path: Path) -> None:
    env = {"FILESTORE_TYPE": "local", "FILESYSTEM_STORAGE_ROOT_DIR": str(tmp_path / "root")}
    (tmp_path / "root").mkdir()
    payload = {"path": str(examples_dir / "coj1m011-kb05-20150219-0125-e90.fits.fz")}
    theirs, ours = ocs_archive_05.both(EDGES, payload, env=env)
    assert ours == theirs
    assert ours["get_fileobj(missing)"] == "None" and ours["unknown type"] == "FileStoreSpecificationError"
    assert ours["dummy"][0]["extension"] == ".fits.fz" and ours["dummy"][1:] == ["", 0, ""]
