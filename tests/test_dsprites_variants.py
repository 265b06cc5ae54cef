"""color-, noisy- and scream-dsprites: pixel statistics against disentanglement_lib's definitions,
factors, seeded draws, the missing Scream file, and short training runs (resume, packs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from untwine.cli import main
from untwine.data import BatchSampler, get
from untwine.data import _files
from untwine.data import color_dsprites as cds
from untwine.data import dsprites as ds
from untwine.data import noisy_dsprites as nds
from untwine.data import scream_dsprites as sds
from untwine.train import RunConfig, checkpoint, train, train_packed

SIZES = (3, 2, 4, 8, 8)  # a leading corner of the dSprites grid: 1,536 images
NAMES = ("color-dsprites", "noisy-dsprites", "scream-dsprites")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTWINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNTWINE_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture(scope="module")
def bits():
    """The packed sprites of the SIZES corner, rendered directly (no cache)."""
    return np.packbits(ds.render(_files.grid_factors(SIZES)) > 0, axis=-1)


def color(bits):
    return cds.ColorDSprites(cds.NAME, bits, SIZES, "procedural")


def noisy(bits):
    return nds.NoisyDSprites(nds.NAME, bits, SIZES, "procedural")


def both_paths(data, n=300, seed=0):
    """``(sprite masks n x 64 x 64 bool, images n x 3 x 64 x 64 float in [0, 1])`` twice: from
    ``sample(n, rng)`` (the metrics' path) and from ``images_at(rows)`` (the training path)."""
    rng = np.random.default_rng(seed)
    f, x = data.sample(n, rng)
    rows = rng.integers(0, len(data), n)
    y = data.images_at(torch.from_numpy(rows)).float() / 255
    return [(ds.render(f) > 0, x.numpy()), (ds.render(data.factors[rows].numpy()) > 0, y.numpy())]


# ------------------------------------------------------------------ registry and factors
def test_specs_and_factors_equal_dsprites(bits, env):
    for name in NAMES:
        spec = get(name)
        assert spec.factor_names == ds.FACTOR_NAMES and spec.factor_sizes == ds.FACTOR_SIZES
        assert spec.sources == ds.SOURCES
    data = cds.load("procedural", sizes=SIZES, progress=False)  # through the dSprites cache
    assert data.factor_names == ds.FACTOR_NAMES and data.factor_sizes == SIZES and len(data) == 1536
    assert data.observation_shape == (3, 64, 64) and data.images is None and data.full_grid
    assert torch.equal(data.factors, _files.grid_factors(SIZES))
    assert np.array_equal(data.bits, bits) and data.files["sprites"].endswith(".bits.npy")
    f = data.sample_factors(50, np.random.default_rng(1))
    assert f.shape == (50, 5) and (f < np.asarray(SIZES)).all()
    assert np.array_equal(data.index_of(f), f @ data._radix)


def test_variants_and_dsprites_unpack_the_same_sprites(bits, env):
    """The variants' masks and procedural dSprites' images come from one unpacking of the same
    memory-mapped cache: masks 0/1, images 0/255, both equal to np.unpackbits of the rows."""
    data = cds.load("procedural", sizes=SIZES, progress=False)
    plain = ds.load_procedural(SIZES, progress=False)
    assert isinstance(data.bits, np.memmap) and data.bits.filename == plain.bits.filename
    rows = np.r_[0, len(data) - 1, np.random.default_rng(0).integers(0, len(data), 40)]
    ref = np.unpackbits(bits[rows], axis=-1)
    assert np.array_equal(data.sprites(rows), ref)
    assert np.array_equal(plain.images_at(torch.from_numpy(rows))[:, 0].numpy(), ref * np.uint8(255))


# ------------------------------------------------------------------ pixel statistics
def test_color_sprite_in_one_colour_per_image_on_black(bits):
    for mask, x in both_paths(color(bits)):
        assert (x.transpose(1, 0, 2, 3)[:, ~mask] == 0).all()  # background exactly black
        cols = []
        for i in range(len(x)):
            px = x[i][:, mask[i]]  # 3 x pixels of the sprite
            assert px.size and (px == px[:, :1]).all()  # one colour over the whole sprite
            cols.append(px[:, 0])
        cols = np.array(cols)
        assert cols.min() >= 0.5 and cols.max() <= 1.0
        assert np.allclose(cols.mean(0), 0.75, atol=0.03)  # uniform(0.5, 1) per channel
        assert np.allclose(cols.std(0), 0.5 / 12**0.5, atol=0.02)
        assert cols.min() < 0.53 and cols.max() > 0.97
        assert abs(np.corrcoef(cols.T)[0, 1]) < 0.2  # channels drawn independently


def test_noisy_background_is_uniform_noise_and_sprite_is_white(bits):
    for mask, x in both_paths(noisy(bits)):
        xc = x.transpose(1, 0, 2, 3)  # 3 x n x 64 x 64
        assert (xc[:, mask] == 1).all()  # min(1 + u, 1) = 1
        bg = xc[:, ~mask]
        assert abs(bg.mean() - 0.5) < 0.005 and abs(bg.var() - 1 / 12) < 0.003
        assert abs((bg < 0.25).mean() - 0.25) < 0.01 and bg.min() == 0 and bg.max() == 1
        assert np.allclose(np.round(bg * 255), bg * 255, atol=1e-4)  # quantised to 1/255
        assert (bg[0] == bg[1]).mean() < 0.01  # one draw per channel
        assert abs(np.corrcoef(bg[0, :-1], bg[0, 1:])[0, 1]) < 0.02  # per pixel


# ------------------------------------------------------------------ randomness
def test_draws_are_seeded_fresh_and_resumable(bits):
    for data in (color(bits), noisy(bits)):
        rng = lambda s: np.random.default_rng(s)  # noqa: E731
        f1, x1 = data.sample(20, rng(3))
        f2, x2 = data.sample(20, rng(3))
        assert np.array_equal(f1, f2) and torch.equal(x1, x2)
        assert not torch.equal(x1, data.observations_from_factors(f1, rng(4)))  # same factors, new draw
        old = data.observations_from_factors(f1, np.random.RandomState(0))
        assert torch.equal(old, data.observations_from_factors(f1, np.random.RandomState(0)))
        rows = torch.from_numpy(rng(5).integers(0, len(data), 12))
        a = data.images_at(rows)
        assert torch.equal(a, data.images_at(rows))  # a pure function of the rows
        b = data.images_at(torch.cat([rows[:3], rows]))[3:]  # the same rows in another batch
        assert all(not torch.equal(a[i], b[i]) for i in range(12))  # ... a fresh draw each
        # draws are keyed on aligned blocks of 4 rows: batches of 4k rows concatenated (a pack)
        # are drawn as they would be alone
        assert torch.equal(data.images_at(torch.cat([rows[:8], rows[:4]])), torch.cat([a[:8], a[:4]]))
        # the sampler's state fixes the batches: a resumed sampler sees the same images
        s = BatchSampler(data, 8, seed=1)
        s.next()
        state = s.state_dict()
        want = [s.next() for _ in range(3)]
        t = BatchSampler(data, 8, seed=1)
        t.load_state_dict(state)
        assert all(torch.equal(w, t.next()) for w in want)
        other = BatchSampler(data, 8, seed=2)
        assert not torch.equal(want[0], other.next())


# ------------------------------------------------------------------ scream
def test_scream_missing_file_says_what_to_put_where(env, capsys):
    with pytest.raises(FileNotFoundError) as e:
        sds.load("procedural", sizes=SIZES, progress=False)
    assert str(e.value) == (
        f"scream-dsprites: file not found; looked at {env / 'scream.jpg'}, {env / 'scream' / 'scream.jpg'}. "
        "Fix: put scream.jpg (The Scream, e.g. https://upload.wikimedia.org/wikipedia/commons/f/f4/"
        "The_Scream.jpg, downloaded in a browser) at one of those paths: the data root (--root or a "
        "run's data_root, else $UNTWINE_DATA, else the cache dir) or its scream/ subfolder; untwine "
        "never downloads it"
    )
    spec = get("scream-dsprites")
    assert not spec.present("procedural", None) and not spec.present("official", None)
    assert main(["data", "list"]) == 0
    rows = {ln.split("│")[1].strip(): ln for ln in capsys.readouterr().out.splitlines() if ln.count("│") > 3}
    assert "procedural*" in rows["color-dsprites"] and "procedural*" in rows["noisy-dsprites"]
    assert "procedural" in rows["scream-dsprites"] and "*" not in rows["scream-dsprites"]
    assert main(["data", "prepare", "scream-dsprites"]) == 2
    err = capsys.readouterr().err
    assert str(env / "scream.jpg") in err and "Traceback" not in err


def test_scream_inverts_a_crop_mixed_with_a_colour(env):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(env / "scream.jpg", quality=95)
    data = sds.load("procedural", sizes=SIZES, progress=False)
    assert data.files["scream"] == str(env / "scream.jpg") and get("scream-dsprites").present("procedural", None)
    s = sds.read_scream(env / "scream.jpg")  # 3 x 70 x 90, the image the dataset uses
    assert s.shape == (3, 70, 90) and np.array_equal(data.scream, s)
    # every candidate crop, 6 x 26 of them
    crops = np.stack([s[:, t : t + 64, l : l + 64] for t in range(6) for l in range(26)])
    for mask, x in both_paths(data, n=60):
        tops = []
        for i in range(len(x)):
            bg = np.where(mask[i], 1 - x[i], x[i])  # undo the inversion: the background b
            c = 2 * bg[None] - crops  # b = (crop + colour) / 2  ->  colour, constant per channel
            spread = np.abs(c - c.mean((2, 3), keepdims=True)).max((1, 2, 3))
            k = int(np.argmin(spread))
            assert spread[k] <= 1.01 / 255 and np.sort(spread)[1] > 0.1  # one crop fits, exactly
            colour = c[k].mean((1, 2))
            assert (colour > -0.01).all() and (colour < 1.01).all()
            tops.append(k // 26)
        assert set(tops) == set(range(6))  # crop rows cover [0, H - 64)


def test_scream_is_thumbnailed_to_fit_350_by_274(tmp_path):
    Image.new("RGB", (1000, 1000), (200, 10, 10)).save(tmp_path / "s.jpg")
    s = sds.read_scream(tmp_path / "s.jpg")
    assert s.shape == (3, 274, 274) and s.dtype == np.float32 and 0.7 < s[0].mean() < 0.85
    Image.new("RGB", (64, 300)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match="need at least 65 x 65"):
        sds.read_scream(tmp_path / "small.png")


# ------------------------------------------------------------------ training
def run_cfg(out, name, **kw) -> RunConfig:
    base = dict(dataset=name, model="beta-vae", arch="conv64", steps=4, batch_size=8, latents=3,
                eval_every=2, eval_images=16, log_every=2, checkpoint_every=4, device="cpu",
                precision="fp32", out=str(out))
    return RunConfig(**{**base, **kw})


def weights(run_dir):
    return load_file(checkpoint.find(run_dir) / checkpoint.MODEL_FILE)


@pytest.mark.parametrize("make", [color, noisy])
def test_short_training_runs_resume_and_pack_exactly(make, bits, tmp_path):
    data = make(bits)
    run = train(run_cfg(tmp_path / "a", data.name), progress=False, data=data)
    assert run.summary["status"] == "finished" and run.config.dataset == data.name
    assert np.isfinite(run.summary["val"]["rec"]) and run.model.channels == 3
    assert run.encode(data.sample(4, np.random.default_rng(0))[1]).shape == (4, 3)
    train(run_cfg(tmp_path / "b", data.name, steps=2), progress=False, data=data)
    train(run_cfg(tmp_path / "b", data.name), progress=False, resume=True, data=data)
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # resumed = uninterrupted, bit for bit
    packed = train_packed([run_cfg(tmp_path / "p0", data.name), run_cfg(tmp_path / "p1", data.name, seed=1)],
                          progress=False, data=data)
    assert [r.summary["status"] for r in packed] == ["finished"] * 2
    wp = weights(tmp_path / "p0")
    for k in wa:  # a pack sees the batches each run sees alone
        torch.testing.assert_close(wa[k], wp[k], atol=1e-5, rtol=0)
