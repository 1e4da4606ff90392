"""``ThumbnailFile``: a preview image (JPEG) of a frame, with caller-supplied metadata."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from typing import Any

from .datafile import DataFile, _safe_component
from .fitsfile import normalize_null_values

__all__ = ["ThumbnailFile"]


class ThumbnailFile(DataFile):
    """A thumbnail: required metadata is ``REQUIRED_THUMBNAIL_METADATA`` (by
    default ``frame_basename``, ``size``, ``DATE-OBS``, ``DAY-OBS``, ``INSTRUME``,
    ``SITEID``, ``TELID``), stored under ``site/instrument/day/thumbnails/``.

    As in ocs_archive, the ``required_headers`` argument is ignored: a
    thumbnail always needs ``REQUIRED_THUMBNAIL_METADATA`` (so code passing the
    FITS ``REQUIRED_HEADERS`` to every file type keeps working). Null values
    (``NULL_HEADER_VALUES``) are normalised as in FITS headers."""

    def _default_required_headers(self) -> Sequence[str]:
        return self.settings.required_thumbnail_metadata

    def _missing_headers(self, headers: Mapping[str, Any]) -> list[str]:
        return [k for k in self.settings.required_thumbnail_metadata if k not in headers]

    def _normalise_headers(self) -> None:
        normalize_null_values(self.header_data, self.settings)

    def get_filestore_path(self) -> str:
        hd = self.header_data
        return self.get_filestore_path_from_frame_metadata(
            hd.get_site_id(), hd.get_instrument_id(), hd.get_observation_day() or "",
            self.open_file.basename + self.open_file.extension,
        )

    @staticmethod
    def get_filestore_path_from_frame_metadata(site_id: str, instrument_id: str, observation_day: str,
                                               filename: str) -> str:
        """``site/instrument/day/thumbnails/filename``, for when only this much is known."""
        return "/".join((
            _safe_component(site_id, "the site id"),
            _safe_component(instrument_id, "the instrument id"),
            _safe_component(observation_day, "the observation day"),
            "thumbnails",
            _safe_component(filename, "the file name"),
        ))

    def get_filestore_content_type(self) -> str:
        ext = self.open_file.extension.lower()
        guessed, _ = mimetypes.guess_type("x" + ext, strict=False)
        return guessed or f"image/{ext.lstrip('.')}"
