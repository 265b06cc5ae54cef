"""TensorBoard event files (``RunConfig.tensorboard``, ``--tensorboard``): the same curves as
``metrics.jsonl``, metrics and traversals at evaluations, resume without duplicated steps, the
same run bits with the flag off or on, and the error naming the extra when it is missing."""

from __future__ import annotations

import io
import json
import math
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from untwine.cli import main
from untwine.studies import parse_study
from untwine.train import RunConfig, checkpoint, train
from untwine.train.tensorboard import INSTALL, TB_DIR, MissingExtraError, _records, keep_through

from conftest import TINY

pytest.importorskip("tensorboard", reason="needs the tensorboard extra: pip install 'untwine[tensorboard]'")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.compat.proto.event_pb2 import Event  # noqa: E402


def tiny(out: Path, **kw) -> RunConfig:
    base = dict(dataset=TINY, model="beta-vae", arch="mlp", steps=6, batch_size=8, latents=3, eval_every=3,
                checkpoint_every=3, eval_images=32, log_every=3, device="cpu", out=str(out), tensorboard=True)
    return RunConfig(**{**base, **kw})


def events(run_dir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(run_dir / TB_DIR), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    return ea


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_events_equal_metrics_jsonl(run_dir: Path) -> None:
    """Every scalar of every metrics.jsonl row is an event at its step with its value (as float32),
    every latent's KL too, and there are no other steps; metrics and traversals at each evaluation."""
    ea, log = events(run_dir), rows(run_dir)
    expected: dict[str, list[tuple[int, float | None]]] = {}
    for r in log:
        for key, v in r.items():
            if key in ("step", "split"):
                continue
            if key == "kl_dims":
                for i, x in enumerate(v):
                    expected.setdefault(f"{r['split']}_kl_per_latent/z{i}", []).append((r["step"], x))
            else:
                expected.setdefault(f"{r['split']}/{key}", []).append((r["step"], v))
    assert {"train/loss", "val/loss", "val/rec", "val/kl", "val/tc", "train_kl_per_latent/z2"} <= set(expected)
    assert set(ea.Tags()["scalars"]) == set(expected) | {"metrics/mig", "metrics/modularity"}
    for tag, want in expected.items():
        got = [(e.step, e.value) for e in ea.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in want], tag
        for (_, g), (_, w) in zip(got, want):
            # metrics.jsonl holds the float32 values as doubles (NaN as null); TensorBoard float32
            assert math.isnan(g) if w is None else g == float(torch.tensor(w, dtype=torch.float32)), (tag, g, w)
    val_steps = [r["step"] for r in log if r["split"] == "val"]
    for name in ("metrics/mig", "metrics/modularity"):
        got = ea.Scalars(name)
        assert [e.step for e in got] == val_steps and all(0.0 <= e.value <= 1.0 for e in got)
    images = ea.Images("traversals")
    assert [im.step for im in images] == val_steps
    from PIL import Image

    img = Image.open(io.BytesIO(images[-1].encoded_image_string))
    assert img.size == (images[-1].width, images[-1].height) and img.width > 100 and img.height > 100


def raw_steps(run_dir: Path) -> list[tuple[str, int]]:
    """(tag, step) of every value in the event files, in file order (no reader's purging)."""
    out = []
    for path in sorted((run_dir / TB_DIR).glob("events.out.tfevents.*")):
        for _, payload in _records(path.read_bytes()):
            ev = Event.FromString(payload)
            out += [(v.tag, ev.step) for v in ev.summary.value]
    return out


def test_event_files_hold_metrics_jsonl_kl_per_latent_metrics_and_traversals(tmp_path):
    run = train(tiny(tmp_path / "run"), progress=False)
    assert_events_equal_metrics_jsonl(run.dir)
    assert [(r["step"], r["split"]) for r in rows(run.dir)] == [(0, "val"), (3, "train"), (3, "val"), (6, "train"), (6, "val")]


def test_flag_off_writes_no_tb_and_the_run_bits_are_the_same(tmp_path):
    off = train(tiny(tmp_path / "off", tensorboard=False), progress=False)
    on = train(tiny(tmp_path / "on"), progress=False)
    assert not (off.dir / TB_DIR).exists() and (on.dir / TB_DIR).is_dir()
    assert (off.dir / "metrics.jsonl").read_text() == (on.dir / "metrics.jsonl").read_text()
    for ckpt in (checkpoint.LATEST, checkpoint.PREV):
        a, b = load_file(off.dir / ckpt / checkpoint.MODEL_FILE), load_file(on.dir / ckpt / checkpoint.MODEL_FILE)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        sa, sb = checkpoint.load_state(off.dir / ckpt), checkpoint.load_state(on.dir / ckpt)
        sa.pop("elapsed_s"), sb.pop("elapsed_s")  # wall time, the one field that may differ
        assert_equal_nested(sa, sb)


def assert_equal_nested(a, b, where="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_equal_nested(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_nested(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert (a == b) if not hasattr(a, "__array__") else (a == b).all(), where


def test_resume_drops_events_after_the_checkpoint_and_continues_without_duplicates(tmp_path, capsys):
    d = tmp_path / "run"
    cfg = tiny(d, steps=12, eval_every=2, checkpoint_every=4, log_every=2)
    train(cfg, progress=False)
    # a kill after the step-12 evaluation, before its checkpoint: the newest checkpoint is step 8
    shutil.rmtree(d / checkpoint.LATEST)
    (d / "summary.json").unlink()
    assert checkpoint.load_state(checkpoint.find(d))["step"] == 8
    assert ("val/loss", 12) in raw_steps(d)
    # the CLI resumes from config.json (tensorboard stays on)
    assert main(["train", "--out", str(d), "--resume", "--no-progress"]) == 0
    assert len(list((d / TB_DIR).glob("events.out.tfevents.*"))) == 2
    steps = raw_steps(d)
    assert len(steps) == len(set(steps)), "a (tag, step) was written twice"
    assert sorted(s for t, s in steps if t == "val/loss") == [0, 2, 4, 6, 8, 10, 12]
    assert_events_equal_metrics_jsonl(d)


def test_keep_through_rewrites_under_a_name_tensorboard_does_not_read_and_clears_leftovers(tmp_path):
    """A kill during a rewrite leaves ``.keep-through`` (or its ``.partial``): never a file whose name
    holds "tfevents", which TensorBoard would load as more curves; the next rewrite removes it."""
    d = tmp_path / "run"
    train(tiny(d), progress=False)
    tb = d / TB_DIR
    (before,) = tb.glob("events.out.tfevents.*")
    for leftover in (".keep-through", ".keep-through.partial"):
        (tb / leftover).write_bytes(b"half a rewrite")
    keep_through(tb, 3)
    assert sorted(p.name for p in tb.iterdir()) == [before.name]
    assert max(s for _, s in raw_steps(d)) == 3 and ("val/loss", 3) in raw_steps(d)


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'untwine\[tensorboard\]'") as e:
        train(tiny(tmp_path / "run"), progress=False)
    assert isinstance(e.value, ImportError) and isinstance(e.value, ValueError)
    assert not (tmp_path / "run").exists()  # checked before any work
    assert main(["train", "--dataset", TINY, "--arch", "mlp", "--steps", "2", "--out", str(tmp_path / "cli"),
                 "--tensorboard", "--no-progress"]) == 2
    assert INSTALL in capsys.readouterr().err and not (tmp_path / "cli").exists()
    RunConfig(dataset=TINY, tensorboard=False).validate()  # off: nothing is needed


def test_study_train_section_and_toml_take_the_flag(tmp_path):
    study = parse_study(
        '[study]\nname = "t"\ndatasets = ["dsprites"]\nseeds = [0]\n[train]\nsteps = 10\ntensorboard = true\n'
        '[[models]]\nname = "vae"\n'
    )
    assert [c.tensorboard for c in study.runs(tmp_path)] == [True]
    with pytest.raises(ValueError, match="tensorboard must be true or false"):
        RunConfig.from_dict({"tensorboard": "yes"})
    assert RunConfig.from_toml(_write(tmp_path / "r.toml", RunConfig(tensorboard=True).to_toml())).tensorboard


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
