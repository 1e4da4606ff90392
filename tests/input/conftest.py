"""Fixtures for the data-file tests: settings that ignore the environment, and
small FITS files built with astropy."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from ocs_transfer import plugins
from ocs_transfer.settings import Settings

LCO_HEADERS: dict[str, Any] = {
    "PROPID": "LCO2015A-001",
    "DATE-OBS": "2015-02-19T13:56:05.261",
    "DAY-OBS": "20150219",
    "INSTRUME": "kb05",
    "SITEID": "coj",
    "TELID": "1m0a",
    "OBSTYPE": "EXPOSE",
    "BLKUID": 1234,
    "OBJECT": "M84",
}


@pytest.fixture(autouse=True)
def _builtin_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OCS_TRANSFER_DISABLE_ENTRYPOINTS", "1")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def settings() -> Settings:
    return Settings()


def fits_bytes(header: dict[str, Any] | None = None, shape: tuple[int, ...] = (8, 8), *,
               extension: dict[str, Any] | None = None) -> bytes:
    """A FITS file: a primary HDU with ``header`` and data of ``shape``, plus an
    image extension with ``extension`` when given."""
    primary = fits.PrimaryHDU(np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape) if shape else None)
    for k, v in (header or {}).items():
        primary.header[k] = v
    hdus: list[Any] = [primary]
    if extension is not None:
        ext = fits.ImageHDU(np.zeros((4, 4), dtype=np.float32))
        for k, v in extension.items():
            ext.header[k] = v
        hdus.append(ext)
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()
