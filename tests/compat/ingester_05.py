"""A small ingester written against the ocs_archive 0.5 API, shaped like the OCS
ingester (validate and build the record, upload to the file store, then what
the science archive does: path from the headers, link, size, read back,
delete). Tests run it with ocs_archive 0.5.0 and, with only its imports
changed, with ocs_transfer (:data:`SCRIPT`, read as text)."""

from pathlib import Path

SCRIPT = (Path(__file__).parent / "ingester_05_script.py").read_text()
