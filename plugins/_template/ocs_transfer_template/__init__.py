"""A copyable provider package: registers ``template-dir`` (files in a local
folder through fsspec). The store is imported only when first used."""

from __future__ import annotations

from collections.abc import Callable

from ocs_transfer import hookimpl


@hookimpl
def ocs_transfer_register_providers(register: Callable[..., None]) -> None:
    register("ocs_transfer_template.store:TemplateStore", name="template-dir", schemes=("template-dir",))
