"""``File``: an open binary file object plus what its name says.

A :class:`File` never reads the whole file: its size comes from seek/tell and
its hashes are computed in chunks, with the file position restored afterwards.
The extension is the longest *known* suffix of the name (``.fits.fz`` rather
than ``.fz``), where the known suffixes are the file types the
:class:`~ocs_transfer.input.filefactory.FileFactory` can open.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import re
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

import attrs

from ..exceptions import FileSpecificationError

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["EmptyFile", "File", "LcoName", "PhotonRanchName", "split_name"]


def __getattr__(name: str) -> Any:
    """ocs_archive 0.5 kept ``DataFile`` and ``FileSpecificationException`` in its
    ``input.file`` module: ``from ocs_transfer.input.file import DataFile`` works too."""
    if name == "DataFile":
        from .datafile import DataFile

        return DataFile
    if name == "FileSpecificationException":
        return FileSpecificationError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

HASH_CHUNK_SIZE = 1024 * 1024


def split_name(name: str, known_extensions: Iterable[str] = ()) -> tuple[str, str]:
    """``(basename, extension)`` of a file name (any directories dropped).

    The extension is the longest of ``known_extensions`` that the name ends with
    (compared case-insensitively, returned as spelled in the name). When none
    matches it is the last dot-suffix (``"a.b.xyz"`` -> ``".xyz"``). A name that
    would have an empty basename (``".fits"``) has no extension.
    """
    filename = name.replace("\\", "/").rsplit("/", 1)[-1]
    lowered = filename.lower()
    best = ""
    for ext in known_extensions:
        ext_l = ext.lower()
        if len(ext_l) > len(best) and len(ext_l) < len(filename) and lowered.endswith(ext_l):
            best = ext_l
    if not best:
        dot = filename.rfind(".")
        best = filename[dot:] if dot > 0 else ""
    cut = len(filename) - len(best)
    return filename[:cut], filename[cut:]


_LCO_RE = re.compile(
    r"^(?P<site>[a-z]{3})(?P<telescope>[a-z0-9]+)-(?P<instrument>[a-z0-9]+)-(?P<day>\d{8})-(?P<sequence>\d{4})"
    r"-(?P<obstype>[a-z])(?P<reduction>\d{2})(?:[-_](?P<suffix>.+))?\Z",
    re.ASCII,  # 0-9 only ("\d" alone takes other scripts' digits, which int() reads); \Z: "$" allows a final newline
)
_PHOTON_RANCH_RE = re.compile(
    r"^(?P<site>[a-z0-9]+)-(?P<instrument>[a-z0-9]+)-(?P<day>\d{8})-(?P<sequence>\d{8})"
    r"-(?P<datatype>[A-Za-z]{2})(?P<reduction>\d{2})(?:[-_](?P<suffix>.+))?\Z",
    re.ASCII,
)


def _valid_day(day: str) -> bool:
    try:
        datetime.date(int(day[:4]), int(day[4:6]), int(day[6:8]))
    except ValueError:
        return False
    return True


@attrs.frozen
class LcoName:
    """The parts of an LCO file name such as ``coj1m011-kb05-20150219-0125-e90``
    (``{site}{telescope}-{instrument}-{YYYYMMDD}-{4-digit sequence}-{type letter}{reduction}``,
    optionally followed by ``-suffix`` or ``_suffix``, e.g. ``-summary``, ``_cat``)."""

    site: str
    telescope: str
    instrument: str
    day: str
    sequence: str
    obstype: str
    reduction_level: int
    suffix: str | None

    @classmethod
    def parse(cls, basename: str) -> LcoName | None:
        """The parts of ``basename``, or ``None`` when it is not an LCO name."""
        m = _LCO_RE.match(basename)
        if m is None or not _valid_day(m["day"]):
            return None
        return cls(m["site"], m["telescope"], m["instrument"], m["day"], m["sequence"], m["obstype"],
                   int(m["reduction"]), m["suffix"])


@attrs.frozen
class PhotonRanchName:
    """The parts of a Photon Ranch file name such as ``sro-kb001ms-20220629-00010442-EX10``
    (``{site}-{instrument}-{YYYYMMDD}-{8-digit sequence}-{datatype}{reduction}``, optionally
    followed by ``-suffix``)."""

    site: str
    instrument: str
    day: str
    sequence: str
    datatype: str
    reduction_level: int
    suffix: str | None

    @classmethod
    def parse(cls, basename: str) -> PhotonRanchName | None:
        """The parts of ``basename``, or ``None`` when it is not a Photon Ranch name."""
        m = _PHOTON_RANCH_RE.match(basename)
        if m is None or not _valid_day(m["day"]):
            return None
        return cls(m["site"], m["instrument"], m["day"], m["sequence"], m["datatype"], int(m["reduction"]),
                   m["suffix"])


class File:
    """An open binary file object with a name.

    ``File(fileobj, path=None)`` keeps ocs_archive's call shape. The name is
    ``path`` when given, else ``fileobj.name`` (or ``.filename``). Pass
    ``known_extensions`` to decide the extension without consulting the file
    types; otherwise they come from :meth:`FileFactory.known_extensions`
    (built-ins, plugins and ``settings.filetype_mapping_overrides``).
    """

    def __init__(
        self,
        fileobj: IO[bytes],
        path: str | os.PathLike[str] | None = None,
        *,
        known_extensions: Iterable[str] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.fileobj = fileobj
        self.path = os.fspath(path) if path is not None else None
        if known_extensions is None:
            from .filefactory import FileFactory

            known_extensions = FileFactory.known_extensions(settings)
        self.basename, self.extension = split_name(self.filename or "", known_extensions)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.filename!r})"

    @property
    def filename(self) -> str | None:
        """The name as given: a full path or at least basename plus extension."""
        if self.path is not None:
            return self.path
        for attr in ("name", "filename"):
            value = getattr(self.fileobj, attr, None)
            if isinstance(value, str):
                return value
        return None

    @property
    def name(self) -> str:
        """``basename + extension`` (no directories)."""
        return self.basename + self.extension

    @property
    def size(self) -> int:
        """The size in bytes, from seek/tell (nothing is read; the position is kept)."""
        try:
            pos = self.fileobj.tell()
            end = self.fileobj.seek(0, io.SEEK_END)
            self.fileobj.seek(pos)
        except (OSError, ValueError) as exc:
            raise FileSpecificationError(
                f"{self.name}: cannot find the size, the file is not seekable ({exc})"
            ) from exc
        return end

    def __len__(self) -> int:
        return self.size

    def get_from_start(self) -> IO[bytes]:
        """The file object, positioned at its start."""
        self.fileobj.seek(0)
        return self.fileobj

    def hashes(
        self, algorithms: Iterable[str] = ("md5", "sha256"), chunk_size: int = HASH_CHUNK_SIZE
    ) -> dict[str, str]:
        """Hex digests of the whole content, read in ``chunk_size`` chunks in one
        pass; the file position is restored."""
        hashers: dict[str, Any] = {a: hashlib.new(a) for a in algorithms}
        pos = self.fileobj.tell()
        try:
            self.fileobj.seek(0)
            while chunk := self.fileobj.read(chunk_size):
                for h in hashers.values():
                    h.update(chunk)
        finally:
            self.fileobj.seek(pos)
        return {a: h.hexdigest() for a, h in hashers.items()}

    def get_md5(self) -> str:
        return self.hashes(("md5",))["md5"]

    def get_sha256(self) -> str:
        return self.hashes(("sha256",))["sha256"]

    @property
    def lco_name(self) -> LcoName | None:
        """The parts of an LCO-style basename, or ``None``."""
        return LcoName.parse(self.basename)

    @property
    def photon_ranch_name(self) -> PhotonRanchName | None:
        """The parts of a Photon Ranch-style basename, or ``None``."""
        return PhotonRanchName.parse(self.basename)

    @staticmethod
    def get_basename_and_extension(path: str | None, known_extensions: Iterable[str] | None = None) -> tuple[
        str | None, str | None
    ]:
        """ocs_archive's helper: ``(basename, extension)``, ``(None, None)`` for no path."""
        if path is None:
            return None, None
        if known_extensions is None:
            from .filefactory import BUILTIN_TYPES

            known_extensions = BUILTIN_TYPES
        return split_name(path, known_extensions)


class EmptyFile(File):
    """A zero-byte :class:`File` with just a name (tests, metadata-only files)."""

    def __init__(self, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(io.BytesIO(b""), path if path is not None else "dummy_file.fits", **kwargs)
