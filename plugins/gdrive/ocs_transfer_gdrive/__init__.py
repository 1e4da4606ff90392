"""Google Drive storage provider for ocs_transfer.

Not implemented yet: this package reserves the name and the layout. It
registers nothing, so `ocs-transfer plugins` does not list it until its
provider lands.
"""

from __future__ import annotations

__version__ = "0.1.0"
