"""``LcoFitsFile``: FITS files following Las Cumbres Observatory's conventions.

On top of :class:`FitsFile` it recognises catalog files (``..._cat``), infers a
missing or ``UNKNOWN`` configuration type and a missing reduction level from
the file name (``coj1m011-kb05-20150219-0125-e90``: ``e`` is the configuration
type letter, ``90`` the reduction level), and stores bad-pixel masks under
``site/instrument/bpm/``.
"""

from __future__ import annotations

from ..exceptions import FileSpecificationError
from .fitsfile import FitsFile

__all__ = ["LETTER_TO_OBSTYPE", "LcoFitsFile"]

#: Configuration-type letters of LCO file names.
LETTER_TO_OBSTYPE = {
    "b": "BIAS",
    "d": "DARK",
    "f": "SKYFLAT",
    "g": "GUIDE",
    "s": "STANDARD",
    "w": "LAMPFLAT",
    "x": "EXPERIMENTAL",
}
MAX_REDUCTION = 90
MIN_REDUCTION = 0


class LcoFitsFile(FitsFile):
    """A FITS file named and headed the LCO way."""

    def _repair_headers(self) -> None:
        self._check_catalog()
        self._repair_configuration_type()
        self._repair_reduction_level()

    def _check_catalog(self) -> None:
        """A ``_cat`` file is a source catalog of the frame named without ``_cat``."""
        basename = self.open_file.basename
        if "_cat" not in basename:
            return
        s = self.settings
        updates = {s.configuration_type_key: "CATALOG"}
        if not self.header_data.get_headers().get(s.catalog_target_frame_key):
            updates[s.catalog_target_frame_key] = basename.replace("_cat", "")
        self.header_data.update_headers(updates)

    def _infer_configuration_type(self) -> str | None:
        headers = self.header_data.get_headers()
        parts = self.open_file.basename.split("-")
        if parts[0] == "trace":
            return "TRACE"
        if parts[0] == "arc":
            return "ARC"
        if len(parts) > 3 and parts[3] == "bias":
            return "BIAS"
        if len(parts) > 3 and parts[3] == "bpm":
            return "BPM"
        if len(parts) < 5 or not parts[4]:
            return None
        letter = parts[4][0]
        is_nres = "igl" in str(headers.get("ENCID", "")) or "igl" in self.header_data.get_telescope_id()
        if letter == "e":
            return "TARGET" if is_nres else ("SPECTRUM" if "en" in parts[1] else "EXPOSE")
        if letter == "a":
            return "DOUBLE" if is_nres else "ARC"
        return LETTER_TO_OBSTYPE.get(letter)

    def _repair_configuration_type(self) -> None:
        conftype = self.header_data.get_configuration_type().strip()
        if conftype and conftype != "UNKNOWN":
            return
        inferred = self._infer_configuration_type()
        key = self.settings.configuration_type_key
        if inferred is None:
            raise FileSpecificationError(
                f"{self.open_file.name}: {key} is missing or UNKNOWN and could not be inferred from the file name;"
                f" set {key} in the headers or the file metadata"
            )
        self.header_data.update_headers({key: inferred})

    def _repair_reduction_level(self) -> None:
        """A missing reduction level comes from the name's last two digits;
        tarballs are fully reduced (90); names without digits are raw (0). A
        level the headers give wins, 0 included (as ocs_archive)."""
        if self.header_data.headers_are_set((self.settings.reduction_level_key,)):
            return
        if self.open_file.extension.lower() == ".tar.gz":
            level = MAX_REDUCTION
        else:
            digits = self.open_file.basename.replace("_cat", "")[-2:]
            level = int(digits) if digits.isdigit() and digits.isascii() else MIN_REDUCTION
        self.header_data.update_headers({self.settings.reduction_level_key: level})

    def _is_bpm_file(self) -> bool:
        """A bad-pixel mask, by configuration type, EXTNAME or name."""
        if self.header_data.get_configuration_type() == "BPM" or self.header_data.get_headers().get("EXTNAME") == "BPM":
            return True
        name = self.open_file.basename.replace("_", "-")
        return name.startswith("bpm-") or "-bpm-" in name or name.endswith("-bpm")

    def get_filestore_path(self) -> str:
        if self._is_bpm_file():
            hd = self.header_data
            from .datafile import _safe_component

            return "/".join((
                _safe_component(hd.get_site_id(), self.settings.site_id_key),
                _safe_component(hd.get_instrument_id(), self.settings.instrument_id_key),
                "bpm",
                _safe_component(self.open_file.basename + self.open_file.extension, "the file name"),
            ))
        return super().get_filestore_path()
