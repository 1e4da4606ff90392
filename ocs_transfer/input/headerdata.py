"""``HeaderData``: a file's headers and the concepts the archive needs from them.

Which header keyword holds which concept (observation date, site, instrument,
...) comes from :class:`~ocs_transfer.settings.Settings` (``*_KEY`` variables),
so observatories with other conventions change settings, not code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import FileSpecificationError
from ..settings import Settings

__all__ = ["HeaderData"]

_EMPTY = (None, "")


class HeaderData:
    """Headers (keyword -> value) with typed getters for the archive's concepts.

    ``HeaderData(headers)`` keeps ocs_archive's call shape; pass ``settings``
    to choose the keywords (``Settings.from_env()`` when omitted).
    """

    def __init__(self, header_data: Mapping[str, Any] | None = None, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.header_data: dict[str, Any] = dict(header_data or {})

    def __repr__(self) -> str:
        return f"HeaderData({len(self.header_data)} headers)"

    # -- the headers ---------------------------------------------------------------

    def get_headers(self) -> dict[str, Any]:
        return self.header_data

    def update_headers(self, new_headers: Mapping[str, Any]) -> None:
        self.header_data.update(new_headers)

    def remove_header(self, key: str) -> None:
        self.header_data.pop(key, None)

    def headers_are_set(self, keys: Iterable[str]) -> bool:
        """True when every key has a value other than ``None`` or ``''``."""
        return all(self.header_data.get(k) not in _EMPTY for k in keys)

    # -- concepts --------------------------------------------------------------------

    def _get(self, key: str, default: Any = None) -> Any:
        return self.header_data.get(key, default)

    def _get_str(self, key: str) -> str:
        value = self.header_data.get(key)
        return "" if value is None else str(value)

    def get_observation_day(self) -> str | None:
        """The observing night, ``YYYYMMDD``."""
        value = self._get(self.settings.observation_day_key)
        return None if value in _EMPTY else str(value)

    def get_observation_date(self) -> str | None:
        value = self._get(self.settings.observation_date_key)
        return None if value in _EMPTY else str(value)

    def get_observation_end_time(self) -> Any:
        return self._get(self.settings.observation_end_time_key)

    def get_proposal_id(self) -> str:
        return self._get_str(self.settings.proposal_id_key)

    def get_configuration_type(self) -> str:
        return self._get_str(self.settings.configuration_type_key)

    def get_exposure_time(self) -> Any:
        return self._get(self.settings.exposure_time_key)

    def get_public_date(self) -> str | None:
        value = self._get(self.settings.public_date_key)
        return None if value in _EMPTY else str(value)

    def get_reduction_level(self) -> int:
        """The reduction level as a whole number (0 = raw); 0 when unset."""
        key = self.settings.reduction_level_key
        value = self._get(key, 0)
        if value in _EMPTY:
            return 0
        if isinstance(value, bool):
            raise FileSpecificationError(f"header {key}={value!r} is not a reduction level (a whole number)")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite real (1E999)
            raise FileSpecificationError(f"header {key}={value!r} is not a reduction level (a whole number)") from None

    def get_instrument_id(self) -> str:
        return self._get_str(self.settings.instrument_id_key)

    def get_site_id(self) -> str:
        return self._get_str(self.settings.site_id_key)

    def get_telescope_id(self) -> str:
        return self._get_str(self.settings.telescope_id_key)

    def get_primary_optical_element(self) -> str:
        return self._get_str(self.settings.primary_optical_element_key)

    def get_target_name(self) -> str:
        return self._get_str(self.settings.target_name_key)

    def get_observation_id(self) -> Any:
        return self._get(self.settings.observation_id_key)

    def get_configuration_id(self) -> Any:
        return self._get(self.settings.configuration_id_key)

    def get_request_id(self) -> Any:
        return self._get(self.settings.request_id_key)

    def get_requestgroup_id(self) -> Any:
        return self._get(self.settings.requestgroup_id_key)

    def get_frame_basename(self) -> str | None:
        """A thumbnail's frame, as its metadata gives it; ``None`` when absent (as ocs_archive)."""
        value = self._get(self.settings.thumbnail_frame_basename_key)
        return None if value is None else str(value)

    def get_size(self) -> str:
        """A thumbnail's size label (e.g. ``small``)."""
        return self._get_str(self.settings.thumbnail_size_key)

    def get_related_frame_keys(self) -> tuple[str, ...]:
        return self.settings.related_frame_keys

    def get_related_frames(self) -> dict[str, Any]:
        """Related-frame keyword -> frame basename, for those that are set."""
        return {k: self.header_data[k] for k in self.get_related_frame_keys() if self.header_data.get(k)}

    def get_archive_frame_data(self) -> dict[str, Any]:
        """The record an OCS science archive stores for this frame."""
        return {
            "reduction_level": self.get_reduction_level(),
            "observation_day": self.get_observation_day(),
            "observation_date": self.get_observation_date(),
            "proposal_id": self.get_proposal_id(),
            "instrument_id": self.get_instrument_id(),
            "target_name": self.get_target_name(),
            "site_id": self.get_site_id(),
            "telescope_id": self.get_telescope_id(),
            "exposure_time": self.get_exposure_time(),
            "primary_optical_element": self.get_primary_optical_element(),
            "public_date": self.get_public_date(),
            "configuration_type": self.get_configuration_type(),
            "observation_id": self.get_observation_id(),
            "request_id": self.get_request_id(),
            "related_frame_filenames": list(self.get_related_frames().values()),
            "frame_basename": self.get_frame_basename(),
            "size": self.get_size(),
        }
