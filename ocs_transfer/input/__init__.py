"""Reading data files: names, sizes, hashes and the metadata an archive needs.

>>> from ocs_transfer.input import open_datafile
>>> with open_datafile("coj1m011-kb05-20150219-0125-e90.fits.fz") as df:  # doctest: +SKIP
...     df.get_header_data().get_archive_frame_data()["site_id"]
'coj'
"""

from __future__ import annotations

from .datafile import DataFile, ObservationPortalProposalTags, ProposalTagLookup, lookup_proposal_tags
from .file import EmptyFile, File, LcoName, PhotonRanchName, split_name
from .filefactory import BUILTIN_TYPES, FileFactory, FileTypeConfigurationError, open_datafile
from .fitsfile import FitsFile
from .headerdata import HeaderData
from .lcofitsfile import LcoFitsFile
from .tarwithfitsfile import TarWithFitsFile
from .thumbnailfile import ThumbnailFile

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
    "TarWithFitsFile",
    "ThumbnailFile",
    "FileFactory",
    "FileTypeConfigurationError",
    "BUILTIN_TYPES",
    "open_datafile",
    "ProposalTagLookup",
    "ObservationPortalProposalTags",
    "lookup_proposal_tags",
]
