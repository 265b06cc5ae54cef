import numpy as np
import pytest
from PIL import Image

from untwine.data import from_folder


def _folder(tmp_path, rgb=False, rows=None):
    for i in range(6):
        a = np.full((20, 30), 40 * i, np.uint8)
        im = Image.fromarray(np.stack([a, a // 2, 255 - a], -1) if (rgb and i == 0) else a)
        im.save(tmp_path / f"img{i}.png")
    rows = rows if rows is not None else [f"img{i}.png,{i % 2},{i // 2}" for i in range(6)]
    (tmp_path / "labels.csv").write_text("file,parity,third\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_grey_folder(tmp_path):
    d = from_folder(_folder(tmp_path))
    assert d.source == "folder" and d.observation_shape == (1, 64, 64) and len(d) == 6
    assert d.factor_names == ("parity", "third") and d.factor_sizes == (2, 3)
    assert d.factors[:, 0].tolist() == [0, 1, 0, 1, 0, 1] and d.images[3].unique().tolist() == [120]
    f, x = d.sample(5, np.random.default_rng(0))
    assert x.shape == (5, 1, 64, 64)


def test_rgb_if_any_colour_image(tmp_path):
    d = from_folder(_folder(tmp_path, rgb=True), tmp_path / "labels.csv")
    assert d.observation_shape == (3, 64, 64)
    assert d.images[0, :, 10, 10].tolist() == [0, 0, 255] and d.images[2, :, 10, 10].tolist() == [80, 80, 80]


def test_bad_csv(tmp_path):
    _folder(tmp_path, rows=["img0.png,0,x"])
    with pytest.raises(ValueError, match=r"line 2: labels must be integers, got \['0', 'x'\]"):
        from_folder(tmp_path)
    _folder(tmp_path, rows=["nope.png,0,1"])
    with pytest.raises(FileNotFoundError, match=r"line 2: image .*nope.png does not exist"):
        from_folder(tmp_path)
    _folder(tmp_path, rows=["img0.png,0"])
    with pytest.raises(ValueError, match="line 2: 2 columns, the header has 3"):
        from_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("name,a\nimg0.png,1\n")
    with pytest.raises(ValueError, match="header must be file,<factor1>"):
        from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="labels file .*missing.csv does not exist"):
        from_folder(tmp_path, tmp_path / "missing.csv")
    (tmp_path / "junk.png").write_text("not an image")
    (tmp_path / "labels.csv").write_text("file,a\njunk.png,1\n")
    with pytest.raises(ValueError, match="not an image Pillow can read"):
        from_folder(tmp_path)
