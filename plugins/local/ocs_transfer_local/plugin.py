"""Registers the ``local`` and ``webdav`` providers and the ``local-cloud``
command group through the ocs_transfer plugin hooks."""

from __future__ import annotations
