"""``LcoTarWithFitsFile``: an LCO spectrograph tarball, whose metadata is the
header of its ``e00``/``e90``/``e91`` FITS member, with the LCO repairs of
:class:`~ocs_transfer.input.lcofitsfile.LcoFitsFile`."""

from __future__ import annotations

import tarfile
from typing import IO

from ..exceptions import FileSpecificationError
from .lcofitsfile import LcoFitsFile
from .tarwithfitsfile import TarWithFitsFile

__all__ = ["LcoTarWithFitsFile"]

_META_MEMBERS = tuple(f"{level}.fits" for level in ("e00", "e90", "e91"))


class LcoTarWithFitsFile(TarWithFitsFile, LcoFitsFile):
    """The first regular member whose name contains ``e00.fits``, ``e90.fits``
    or ``e91.fits`` (``.fits.fz`` too) holds the metadata."""

    @staticmethod
    def _get_meta_file_from_targz(tarfileobj: tarfile.TarFile) -> IO[bytes]:
        for member in tarfileobj.getmembers():
            if member.isfile() and any(m in member.name for m in _META_MEMBERS):
                extracted = tarfileobj.extractfile(member)
                if extracted is not None:
                    return extracted
        raise FileSpecificationError(
            "the tar archive has no e00, e90 or e91 .fits member (the LCO spectrum metadata)"
        )
