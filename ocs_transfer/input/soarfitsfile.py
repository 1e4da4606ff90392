"""``SOARFitsFile``: FITS files of the SOAR telescope's pipeline, whose file-name
prefix says the reduction level (``cfzst`` 62, ``ecfzst`` 63, ``wecfzst`` 64)."""

from __future__ import annotations

from .fitsfile import FitsFile

__all__ = ["SOAR_PREFIX_TO_RLEVEL", "SOARFitsFile"]

#: Name prefix -> reduction level.
SOAR_PREFIX_TO_RLEVEL = {"cfzst": 62, "ecfzst": 63, "wecfzst": 64}


class SOARFitsFile(FitsFile):
    """A SOAR FITS file: a known name prefix sets the reduction level even when
    the header has one (the pipeline's header value can be wrong); otherwise
    the header's level stays (0 when unset)."""

    def _repair_headers(self) -> None:
        super()._repair_headers()
        level = self.header_data.get_reduction_level()
        for prefix, rlevel in SOAR_PREFIX_TO_RLEVEL.items():
            if self.open_file.basename.startswith(prefix):
                level = rlevel
                break
        self.header_data.update_headers({self.settings.reduction_level_key: level})
