"""FileFactory: built-in table, plugin-registered types, overrides, errors."""

from __future__ import annotations

import importlib
import io

import pytest

from ocs_transfer import hookimpl, plugins
from ocs_transfer.exceptions import ConfigurationError, FileSpecificationError, PluginError
from ocs_transfer.input import (
    DataFile,
    EmptyFile,
    File,
    FileFactory,
    FileTypeConfigurationError,
    FitsFile,
    LcoFitsFile,
    TarWithFitsFile,
    ThumbnailFile,
)
from ocs_transfer.input.filefactory import BUILTIN_TYPES


class SpectrumFile(DataFile):
    content_type = "application/x-spectrum"


class _Plugin:
    @staticmethod
    @hookimpl
    def ocs_transfer_register_datafile_types(register) -> None:
        register(".spec.dat", SpectrumFile)
        register(".fits.xyz", "ocs_transfer.input.fitsfile.FitsFile")


def test_builtin_table(settings) -> None:
    get = FileFactory.get_datafile_class_for_extension
    assert get(".fits", settings) is FitsFile
    assert get(".FITS.FZ", settings) is LcoFitsFile
    assert get(".tar.gz", settings) is TarWithFitsFile
    assert get(".pdf", settings) is DataFile
    assert get(".jpg", settings) is ThumbnailFile
    assert set(BUILTIN_TYPES) <= set(plugins.datafile_types())  # registered through the hook
    assert FileFactory.known_extensions(settings)[0] in (".fits.bz2",)  # longest first


def test_old_call_shape_reads_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("FILETYPE_MAPPING_OVERRIDES", "{'.superpdf': 'ocs_transfer.input.datafile.DataFile'}")
    assert FileFactory.get_datafile_class_for_extension(".superpdf") is DataFile
    assert EmptyFile("super_pdf_file.superpdf").extension == ".superpdf"


def test_overrides_extend_and_override(settings) -> None:
    s = settings.evolve(filetype_mapping_overrides={
        ".fake.fits": "ocs_transfer.input.fitsfile.FitsFile",
        ".fits": "ocs_transfer.input.lcofitsfile.LcoFitsFile",
    })
    f = EmptyFile("fake_fits_file.fake.fits", settings=s)
    assert FileFactory.get_datafile_class_for_extension(f.extension, s) is FitsFile
    assert FileFactory.get_datafile_class_for_extension(".fits", s) is LcoFitsFile


def test_plugin_registered_types_are_found(settings) -> None:
    with plugins.temporary_plugin(_Plugin(), "spectra"):
        assert FileFactory.get_datafile_class_for_extension(".spec.dat", settings) is SpectrumFile
        assert FileFactory.get_datafile_class_for_extension(".fits.xyz", settings) is FitsFile
        f = File(io.BytesIO(), "x.spec.dat", settings=settings)
        assert f.extension == ".spec.dat"
        df = FileFactory.get_datafile(f, {"DATE-OBS": "2020-01-01T00:00:00"}, settings=settings.evolve(
            required_headers=()))
        assert isinstance(df, SpectrumFile) and df.get_filestore_content_type() == "application/x-spectrum"
    with pytest.raises(FileSpecificationError):
        FileFactory.get_datafile_class_for_extension(".spec.dat", settings)


def test_plugin_registering_a_non_datafile_is_rejected() -> None:
    class Bad:
        @staticmethod
        @hookimpl
        def ocs_transfer_register_datafile_types(register) -> None:
            register(".bad", File)

    with pytest.raises(PluginError, match="not a DataFile subclass"), plugins.temporary_plugin(Bad(), "bad"):
        pass


def test_unknown_extension(settings) -> None:
    with pytest.raises(FileSpecificationError, match=r"file extension \.fake is not a supported file type"):
        FileFactory.get_datafile_class_for_extension(".fake", settings)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("this.module.is.fake.fitsfile.FitsFile", "module this.module.is.fake.fitsfile was not found"),
        ("ocs_transfer.input.fitsfile.FakeFitsFile", "class FakeFitsFile does not exist in module"),
        ("ocs_transfer.input.file.File", "is not a subclass of ocs_transfer.input.DataFile"),
        ("NoDots", "not a dotted path"),
    ],
)
def test_bad_overrides_are_clear_errors(settings, target: str, message: str) -> None:
    s = settings.evolve(filetype_mapping_overrides={".fits": target})
    with pytest.raises(FileTypeConfigurationError, match=message) as info:
        FileFactory.get_datafile_class_for_extension(".fits", s)
    assert isinstance(info.value, ConfigurationError) and isinstance(info.value, FileSpecificationError)


def test_overrides_take_the_colon_spelling_of_plugins(settings) -> None:
    from ocs_transfer.input.fitsfile import FitsFile

    s = settings.evolve(filetype_mapping_overrides={".fits": "ocs_transfer.input.fitsfile:FitsFile"})
    assert FileFactory.get_datafile_class_for_extension(".fits", s) is FitsFile


def test_package_names_resolve_on_first_use() -> None:
    import ocs_transfer.input as package

    for name, module in package._MODULES.items():
        assert getattr(package, name) is getattr(importlib.import_module(f"ocs_transfer.input.{module}"), name)
    assert set(package.__all__) == set(package._MODULES) <= set(dir(package))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        package.Nope


def test_get_datafile_wraps_a_plain_file_object(examples_dir, settings) -> None:
    path = examples_dir / "cpt1m012-fl10-20151216-0073-e00.fits.fz"
    with open(path, "rb") as fp:
        df = FileFactory.get_datafile(fp, settings=settings)
        assert isinstance(df, LcoFitsFile) and df.open_file.name == path.name
    with open(path, "rb") as fp:
        df = FileFactory.get_datafile(io.BytesIO(fp.read()), settings=settings, path="renamed-e00.fits.fz")
        assert df.open_file.basename == "renamed-e00"
