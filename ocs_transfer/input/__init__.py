"""Reading data files: names, sizes, hashes and the metadata an archive needs.

>>> from ocs_transfer.input import open_datafile
>>> with open_datafile("coj1m011-kb05-20150219-0125-e90.fits.fz") as df:  # doctest: +SKIP
...     df.get_header_data().get_archive_frame_data()["site_id"]
'coj'

The names below are imported on first use, so importing the package (as the
plugin manager does for its hooks) costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .datafile import DataFile, ObservationPortalProposalTags, ProposalTagLookup, lookup_proposal_tags
    from .file import EmptyFile, File, LcoName, PhotonRanchName, split_name
    from .filefactory import BUILTIN_TYPES, FileFactory, FileTypeConfigurationError, open_datafile
    from .fitsfile import FitsFile
    from .headerdata import HeaderData
    from .lcofitsfile import LcoFitsFile
    from .lcotarwithfitsfile import LcoTarWithFitsFile
    from .soarfitsfile import SOARFitsFile
    from .tarwithfitsfile import TarWithFitsFile
    from .thumbnailfile import ThumbnailFile

#: Public name -> the module of this package that defines it.
_MODULES = {
    "DataFile": "datafile",
    "ObservationPortalProposalTags": "datafile",
    "ProposalTagLookup": "datafile",
    "lookup_proposal_tags": "datafile",
    "EmptyFile": "file",
    "File": "file",
    "LcoName": "file",
    "PhotonRanchName": "file",
    "split_name": "file",
    "BUILTIN_TYPES": "filefactory",
    "FileFactory": "filefactory",
    "FileTypeConfigurationError": "filefactory",
    "open_datafile": "filefactory",
    "FitsFile": "fitsfile",
    "HeaderData": "headerdata",
    "LcoFitsFile": "lcofitsfile",
    "LcoTarWithFitsFile": "lcotarwithfitsfile",
    "SOARFitsFile": "soarfitsfile",
    "TarWithFitsFile": "tarwithfitsfile",
    "ThumbnailFile": "thumbnailfile",
}

__all__ = [
    "File",
    "EmptyFile",
    "LcoName",
    "PhotonRanchName",
    "split_name",
    "DataFile",
    "HeaderData",
    "FitsFile",
    "LcoFitsFile",
    "SOARFitsFile",
    "TarWithFitsFile",
    "LcoTarWithFitsFile",
    "ThumbnailFile",
    "FileFactory",
    "FileTypeConfigurationError",
    "BUILTIN_TYPES",
    "open_datafile",
    "ProposalTagLookup",
    "ObservationPortalProposalTags",
    "lookup_proposal_tags",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
