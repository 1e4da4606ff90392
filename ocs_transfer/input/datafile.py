"""``DataFile``: the metadata the archive needs from one data file.

The base class takes its metadata from the caller (PDFs, other files); the
subclasses read it from the file (:class:`~ocs_transfer.input.fitsfile.FitsFile`
and friends). Construction does all the work, in this order:

1. build the headers and check the required ones (:meth:`_create_header_data`);
2. normalise them (:meth:`_normalise_headers`: FITS files drop blacklisted
   headers, turn null markers into ``''``/``None`` and strip extensions from
   related frames);
3. repair what the file's conventions allow (:meth:`_repair_headers`: e.g. the
   LCO subclass infers the configuration type and reduction level from the name);
4. fill in the observation day from the observation date when missing;
5. fill in the public date when missing (rules in :meth:`_repair_public_date`).

Nothing here talks to the network except an explicitly configured proposal-tag
lookup (step 5), which runs once, at construction, with a timeout.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from ..exceptions import FileSpecificationError, UnsafePathError
from ..settings import Settings
from ..storage.paths import safe_component
from .file import File
from .headerdata import HeaderData

__all__ = ["DataFile", "ObservationPortalProposalTags", "ProposalTagLookup", "lookup_proposal_tags"]

log = logging.getLogger(__name__)

#: ``proposal_id -> tags`` (``None`` when unknown). Must be thread-safe.
ProposalTagLookup = Callable[[str], Sequence[str] | None]

#: How far in the future "private forever" is (ocs_archive's 999 years).
PRIVATE_FOREVER = datetime.timedelta(days=365 * 999)


def lookup_proposal_tags(lookup: ProposalTagLookup, proposal_id: str, timeout: float) -> list[str] | None:
    """Call ``lookup(proposal_id)`` for at most ``timeout`` seconds.

    A lookup that fails, times out or returns something that is not a list of
    strings counts as "no tags" (``None``), with a warning logged: tags only
    refine the public-date rules, so the settings' rules still apply.
    """
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(lookup(proposal_id))
        except Exception as exc:  # a foreign callable: reported, then treated as "no tags"
            result.append(exc)

    worker = threading.Thread(target=run, name="ocs-transfer-proposal-tags", daemon=True)
    worker.start()
    worker.join(timeout)
    if not result:
        log.warning("proposal tag lookup for %r timed out after %ss; using the settings' rules", proposal_id, timeout)
        return None
    tags = result[0]
    if isinstance(tags, BaseException):
        log.warning("proposal tag lookup for %r failed (%s: %s); using the settings' rules", proposal_id,
                    type(tags).__name__, tags)
        return None
    if tags is None:
        return None
    if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
        log.warning("proposal tag lookup for %r returned %r, not a list of strings; ignored", proposal_id, tags)
        return None
    return list(tags)


class ObservationPortalProposalTags:
    """A :data:`ProposalTagLookup` asking an OCS Observation Portal
    (``GET {base_url}/api/proposals/{id}/`` with ``Authorization: Token ...``).

    HTTP errors and bad answers give ``None``; each call has ``timeout``.
    """

    def __init__(self, base_url: str, api_token: str, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self._token = api_token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"ObservationPortalProposalTags({self.base_url!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> ObservationPortalProposalTags | None:
        """The lookup ``settings`` configure, or ``None`` when the portal URL or token is unset."""
        if not settings.observation_portal_base_url or not settings.observation_portal_api_token:
            return None
        return cls(settings.observation_portal_base_url, settings.observation_portal_api_token,
                   settings.observation_portal_timeout)

    def __call__(self, proposal_id: str) -> list[str] | None:
        import urllib.error  # here, not at the top: urllib.request pulls in http.client and ssl (tens of ms)
        import urllib.parse
        import urllib.request

        quoted = urllib.parse.quote(proposal_id, safe="")
        url = urllib.parse.urljoin(self.base_url, f"/api/proposals/{quoted}/")
        if not url.startswith(("http://", "https://")):
            log.warning("OBSERVATION_PORTAL_BASE_URL %r is not an http(s) URL; no proposal tags", self.base_url)
            return None
        request = urllib.request.Request(url, headers={"Authorization": f"Token {self._token}",  # noqa: S310
                                                      "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - scheme checked
                body = json.loads(response.read(1024 * 1024))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("could not fetch tags of proposal %r from the Observation Portal: %s", proposal_id,
                        getattr(exc, "reason", exc))
            return None
        tags = body.get("tags") if isinstance(body, dict) else None
        return tags if isinstance(tags, list) else None


def parse_date(value: str, what: str) -> datetime.datetime:
    """An ISO 8601 date/time from a header."""
    try:
        return datetime.datetime.fromisoformat(value.strip())
    except ValueError:
        raise FileSpecificationError(
            f"{what}={value!r} is not an ISO 8601 date (e.g. 2015-02-19T13:56:05.261)"
        ) from None


def _safe_component(value: str, what: str) -> str:
    """``value`` as one file-store path component, by the path rules of
    :func:`ocs_transfer.storage.paths.safe_component`, except that a separator
    is refused rather than replaced (the archive path keeps header values as
    they are)."""
    if not value or any(c in value for c in "/\\"):
        raise FileSpecificationError(
            f"cannot build the file-store path: {what} is {value!r}, not a usable name (empty, or has a separator)"
        )
    try:
        return safe_component(value)
    except UnsafePathError as exc:
        raise FileSpecificationError(f"cannot build the file-store path: {what}: {exc}") from exc


class DataFile:
    """Metadata of one data file, taken from the caller's ``file_metadata``.

    ``DataFile(open_file, file_metadata, blacklist_headers, required_headers)``
    keeps ocs_archive's call shape; ``None`` for the last two means the
    settings' ``HEADER_BLACKLIST`` / ``REQUIRED_HEADERS``. ``settings`` defaults
    to ``Settings.from_env()``. ``proposal_tag_lookup`` (``proposal_id -> tags``)
    refines the public date; by default it is the Observation Portal when the
    settings configure one, and nothing otherwise.
    """

    #: The content type stored with the file; ``None`` guesses from the name.
    content_type: ClassVar[str | None] = None

    def __init__(
        self,
        open_file: File,
        file_metadata: Mapping[str, Any] | None = None,
        blacklist_headers: Sequence[str] | None = None,
        required_headers: Sequence[str] | None = None,
        *,
        settings: Settings | None = None,
        proposal_tag_lookup: ProposalTagLookup | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.open_file = open_file
        if blacklist_headers is None:
            blacklist_headers = self.settings.header_blacklist
        if required_headers is None:
            required_headers = self._default_required_headers()
        self.blacklist_headers = tuple(blacklist_headers)
        self.required_headers = tuple(required_headers)
        if proposal_tag_lookup is None:
            proposal_tag_lookup = ObservationPortalProposalTags.from_settings(self.settings)
        self.proposal_tag_lookup = proposal_tag_lookup
        self.proposal_tags: list[str] | None = None
        self.header_data: HeaderData
        self._create_header_data(dict(file_metadata or {}))
        self._normalise_headers()
        self._repair_headers()
        self._repair_observation_day()
        self._repair_public_date()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.open_file.name!r})"

    # -- building the headers ------------------------------------------------------------

    def _default_required_headers(self) -> Sequence[str]:
        return self.settings.required_headers

    def _missing_headers(self, headers: Mapping[str, Any]) -> list[str]:
        return [k for k in self.required_headers if k not in headers]

    def _is_valid_file_metadata(self, metadata_dict: Mapping[str, Any]) -> bool:
        """True when every required header is present."""
        return not self._missing_headers(metadata_dict)

    def _create_header_data(self, file_metadata: dict[str, Any]) -> None:
        missing = self._missing_headers(file_metadata)
        if missing:
            raise FileSpecificationError(
                f"{self.open_file.name}: missing required headers: {', '.join(missing)}"
                " (supply them as file metadata, or change the required headers)"
            )
        self.header_data = HeaderData(file_metadata, self.settings)

    def _normalise_headers(self) -> None:
        """Subclasses clean up headers here (the base class takes the caller's as given)."""

    def _repair_headers(self) -> None:
        """Subclasses fill in headers from their file conventions here."""

    def _repair_observation_day(self) -> None:
        """Derive the observation day (``YYYYMMDD``) from the observation date when it is missing."""
        if self.header_data.get_observation_day():
            return
        date = self.header_data.get_observation_date()
        if date:
            day = date.split("T")[0].replace("-", "")
            self.header_data.update_headers({self.settings.observation_day_key: day})

    def _repair_public_date(self) -> None:
        """Set the public date when the headers do not already have one.

        - proposal tags (from the lookup) win: a private tag means private
          forever (999 years), a public tag means public at the observation date;
        - otherwise calibration frames (``CALIBRATION_TYPES``) and proposals whose
          id contains one of ``PUBLIC_PROPOSALS`` are public at once;
        - proposals whose id contains one of ``PRIVATE_PROPOSALS``, and files whose
          basename contains one of ``PRIVATE_FILE_TYPES``, are private forever;
        - everything else is public ``DAYS_UNTIL_PUBLIC`` days after the observation.
        """
        hd = self.header_data
        if hd.get_public_date():
            return
        s = self.settings
        obs_date = hd.get_observation_date()
        if obs_date is None:
            raise FileSpecificationError(
                f"{self.open_file.name}: cannot set the public date: no {s.observation_date_key} header"
            )
        proposal = hd.get_proposal_id()
        self._fetch_proposal_tags()
        tags = self.data_privacy_tags
        if tags and any(t in s.private_proposal_tags for t in tags):
            public = self._date_plus(obs_date, PRIVATE_FOREVER)
        elif tags:
            public = obs_date
        elif hd.get_configuration_type() in s.calibration_types or (
            proposal and any(p in proposal for p in s.public_proposals)
        ):
            public = obs_date
        elif (proposal and any(p in proposal for p in s.private_proposals)) or any(
            t in self.open_file.basename for t in s.private_file_types
        ):
            public = self._date_plus(obs_date, PRIVATE_FOREVER)
        else:
            public = self._date_plus(obs_date, datetime.timedelta(days=s.days_until_public))
        hd.update_headers({s.public_date_key: public})

    def _date_plus(self, date: str, delta: datetime.timedelta) -> str:
        key = self.settings.observation_date_key
        try:
            return (parse_date(date, key) + delta).isoformat()
        except OverflowError:
            raise FileSpecificationError(
                f"{self.open_file.name}: cannot set the public date: {key}={date!r} plus {delta.days} days"
                " is past the year 9999; correct the observation date or set the public date in the headers"
            ) from None

    def _fetch_proposal_tags(self) -> None:
        """Ask the proposal-tag lookup, once (only while the public date is set)."""
        if self.proposal_tags is None and self.proposal_tag_lookup is not None:
            proposal = self.header_data.get_proposal_id()
            if proposal:
                self.proposal_tags = lookup_proposal_tags(
                    self.proposal_tag_lookup, proposal, self.settings.observation_portal_timeout
                )
            self.proposal_tag_lookup = None  # asked once, whatever the answer

    @property
    def data_privacy_tags(self) -> list[str] | None:
        """The proposal's tags that are privacy tags (``PRIVATE_PROPOSAL_TAGS``,
        ``PUBLIC_PROPOSAL_TAGS``), or ``None``. Never does I/O: the tags are
        fetched, if at all, while the public date is set at construction."""
        if not self.proposal_tags:
            return None
        known = (*self.settings.private_proposal_tags, *self.settings.public_proposal_tags)
        privacy = [t for t in self.proposal_tags if t in known]
        return privacy or None

    # -- what the archive and the file store need ------------------------------------------

    def get_header_data(self) -> HeaderData:
        return self.header_data

    def get_wcs_corners(self) -> dict[str, Any] | None:
        """The sky footprint as a GeoJSON polygon (5 points, closed), or ``None``.

        With ``RADIUS`` (arcsec), ``RA`` (hours) and ``DEC`` (degrees) headers it
        is the square around that circle; otherwise, with a CD matrix and
        ``NAXIS1``/``NAXIS2`` (and no ``NAXIS3``), the image corners through
        the WCS. Headers that do not make a valid WCS give ``None``.
        """
        from .footprint import angle_degrees, image_corners

        s = self.settings
        headers = self.header_data.get_headers()
        corners: list[tuple[float, float]]
        if s.radius_key in headers and s.ra_key in headers and s.dec_key in headers:
            r = angle_degrees(headers[s.radius_key], "arcsec")
            ra = angle_degrees(headers[s.ra_key], "hourangle")
            dec = angle_degrees(headers[s.dec_key], "deg")
            if r is None or ra is None or dec is None:
                return None
            corners = [(ra - r, dec + r), (ra + r, dec + r), (ra + r, dec - r), (ra - r, dec - r)]
        elif self.header_data.headers_are_set(("CD1_1", "CD1_2", "CD2_1", "CD2_2", "NAXIS1", "NAXIS2")) and (
            not self.header_data.headers_are_set(("NAXIS3",))
        ):
            found = image_corners(headers)
            if found is None:
                return None
            corners = found
        else:
            return None
        ring = [[float(x), float(y)] for x, y in corners]
        return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}

    def get_filestore_path(self) -> str:
        """``site/instrument/observation_day/raw|processed/basename+extension`` (raw
        for reduction level 0)."""
        hd = self.header_data
        kind = "raw" if hd.get_reduction_level() == 0 else "processed"
        s = self.settings
        return "/".join((
            _safe_component(hd.get_site_id(), s.site_id_key),
            _safe_component(hd.get_instrument_id(), s.instrument_id_key),
            _safe_component(hd.get_observation_day() or "", s.observation_day_key),
            kind,
            _safe_component(self.open_file.basename + self.open_file.extension, "the file name"),
        ))

    def get_filestore_content_type(self) -> str:
        """The content type to store the file with ('' when unknown)."""
        if self.content_type is not None:
            return self.content_type
        import mimetypes  # here: it reads the system's type tables, which FITS files never need

        guessed, _ = mimetypes.guess_type("x" + self.open_file.extension.lower(), strict=False)
        return guessed or ""
