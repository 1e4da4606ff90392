# Written against ocs_archive 0.5.0; tests change only the imports below.
import hashlib
import json
import os
import sys

from ocs_archive.input.file import EmptyFile, File, FileSpecificationException
from ocs_archive.input.filefactory import FileFactory
from ocs_archive.settings import settings as archive_settings
from ocs_archive.storage.filestore import FileStoreConnectionError, FileStoreSpecificationError
from ocs_archive.storage.filestorefactory import FileStoreFactory


class DoNotRetryError(Exception):
    pass


class BackoffRetryError(Exception):
    pass


def validate_fits_and_create_archive_record(fileobj, path=None, file_metadata=None,
                                            required_headers=archive_settings.REQUIRED_HEADERS,
                                            blacklist_headers=archive_settings.HEADER_BLACKLIST):
    try:
        open_file = File(fileobj, path)
        datafile = FileFactory.get_datafile_class_for_extension(open_file.extension)(
            open_file, file_metadata, blacklist_headers, required_headers
        )
    except FileSpecificationException as fe:
        raise DoNotRetryError(str(fe))
    json_record = datafile.get_header_data().get_archive_frame_data()
    json_record["headers"] = datafile.get_header_data().get_headers()
    json_record["area"] = datafile.get_wcs_corners()
    json_record["basename"] = open_file.basename
    return json_record


def upload_file_to_file_store(fileobj, path=None, file_metadata=None):
    try:
        open_file = File(fileobj, path)
        datafile = FileFactory.get_datafile_class_for_extension(open_file.extension)(open_file, file_metadata)
    except FileSpecificationException as fe:
        raise DoNotRetryError(str(fe))
    try:
        filestore = FileStoreFactory.get_file_store_class()()
        return filestore.store_file(datafile)
    except FileStoreSpecificationError as fe:
        raise DoNotRetryError(str(fe))
    except FileStoreConnectionError as fce:
        raise BackoffRetryError(str(fce))


def archive_side(record, version, name):
    """What the science archive does with a frame: its store path from the
    headers (EmptyFile + metadata), a link, the size, the bytes."""
    empty = EmptyFile(name)
    datafile = FileFactory.get_datafile_class_for_extension(empty.extension)(empty, record["headers"])
    store_path = datafile.get_filestore_path()
    filestore = FileStoreFactory.get_file_store_class()()
    with filestore.get_fileobj(store_path) as fileobj:
        sha256 = hashlib.sha256(fileobj.read()).hexdigest()
    return {
        "store_path": store_path,
        "url": filestore.get_url(store_path, version["key"], 3600),
        "size": filestore.get_file_size(store_path),
        "sha256": sha256,
    }


results = []
for item in json.load(sys.stdin):
    name = os.path.basename(item["path"])
    with open(item["path"], "rb") as fileobj:
        try:
            record = validate_fits_and_create_archive_record(fileobj, item["path"], item.get("metadata"))
            version = upload_file_to_file_store(fileobj, item["path"], item.get("metadata"))
        except (DoNotRetryError, BackoffRetryError) as exc:
            results.append({"name": name, "error": type(exc).__name__})
            continue
    results.append({"name": name, "record": record, "version": version, **archive_side(record, version, name)})

stored = {}
root = os.environ.get("FILESYSTEM_STORAGE_ROOT_DIR")
if os.environ.get("FILESTORE_TYPE") == "local":
    for dirpath, _, files in os.walk(root):
        for f in files:
            full = os.path.join(dirpath, f)
            with open(full, "rb") as fp:
                stored[os.path.relpath(full, root)] = hashlib.sha256(fp.read()).hexdigest()

for result in results:
    if "version" in result:
        FileStoreFactory.get_file_store_class()().delete_file(result["store_path"], result["version"]["key"])
left = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs) if root else []
print(json.dumps({"results": results, "stored": stored, "left": left}, default=str))
