"""Seafile storage provider for ocs_transfer: the ``seafile`` provider
(:class:`~ocs_transfer_seafile.store.SeafileStore`), an fsspec filesystem over
the Seafile Web API (``seafile://``,
:class:`~ocs_transfer_seafile.fs.SeafileFileSystem`), and the
``ocs-transfer seafile get-token`` / ``list-repos`` helpers
(:func:`~ocs_transfer_seafile.api.get_token`,
:func:`~ocs_transfer_seafile.api.list_repos`)."""

from __future__ import annotations

__version__ = "0.1.0"
