"""Packed training: K runs as one batched model equal the K runs trained alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from untwine import objectives
from untwine.data import BatchSampler
from untwine.models import VAE
from untwine.train import RunConfig, checkpoint, load_run, train
from untwine.train import packed
from untwine.train import train_packed
from untwine.train.packed import PackedVAE

from conftest import TINY, nan_loss_from, patch_terms, squares

BETAS = [(1.0, 0), (4.0, 3), (16.0, 7)]  # (beta, seed) of the three runs


def cfg(out, **kw) -> RunConfig:
    # float32: these tests compare a pack with runs alone to 1e-5 (bf16 packs: their own tests)
    base = dict(dataset=TINY, model="beta-vae", steps=6, batch_size=8, latents=3, eval_every=3,
                eval_images=16, log_every=2, checkpoint_every=3, device="cpu", precision="fp32",
                out=str(out))
    return RunConfig(**{**base, **kw})


def bvae(root, name, beta, seed, **kw) -> RunConfig:
    return cfg(root / f"{name}-b{beta}-s{seed}", hparams={"beta": beta}, seed=seed, **kw)


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(checkpoint.find(run_dir) / checkpoint.MODEL_FILE)


def assert_close_runs(a, b, atol=1e-5):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=0, msg=k)
    ra = [json.loads(ln) for ln in (a / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(ln) for ln in (b / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in ra] == [(r["step"], r["split"]) for r in rb]
    for x, y in zip(ra, rb):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4, abs=1e-4)


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The three beta-VAE runs trained one at a time."""
    root = tmp_path_factory.mktemp("alone")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    dirs = [train(bvae(root, "u", b, s), progress=False).dir for b, s in BETAS]
    torch.set_num_threads(n)
    return dirs


@pytest.mark.parametrize("backend", ["vmap", "loop"])
def test_packed_beta_vae_equals_unpacked(alone, tmp_path, backend):
    runs = train_packed([bvae(tmp_path, "p", b, s) for b, s in BETAS], progress=False, backend=backend)
    assert [r.config.hparams["beta"] for r in runs] == [b for b, _ in BETAS]
    for run, ref in zip(runs, alone):
        assert run.summary["status"] == "finished" and run.summary["steps"] == 6
        assert_close_runs(run.dir, ref)
        assert RunConfig.from_json(run.dir / "config.json") == run.config
        loaded = load_run(run.dir)  # an ordinary run folder
        torch.testing.assert_close(loaded.model.decoder.deconv[0].weight, run.model.decoder.deconv[0].weight)
    # different betas and seeds did give different models
    assert not torch.allclose(weights(runs[0].dir)["decoder.fc.0.weight"], weights(runs[1].dir)["decoder.fc.0.weight"])


def test_each_run_of_a_pack_scores_its_own_model(tmp_path):
    """score in a pack: every run's rows, scored on its own (stacked) weights, as `untwine evaluate`
    scores the run's final checkpoint."""
    from untwine.metrics import evaluate

    runs = train_packed([bvae(tmp_path, "p", b, s, score="mig") for b, s in BETAS[:2]], progress=False)
    for run in runs:
        rows = [json.loads(ln) for ln in (run.dir / "metrics.jsonl").read_text().splitlines()]
        scores = [r for r in rows if r["split"] == "score"]
        assert [r["step"] for r in scores] == [0, 3, 6] and run.summary["score"]["mig"] == scores[-1]["mig"]
        ref = evaluate(load_run(run.dir), squares(), metrics="mig", seed=0, progress=False)["mig"]
        assert scores[-1]["mig"] == pytest.approx(ref, abs=1e-6)
    assert runs[0].summary["score"]["mig_per_factor"] != runs[1].summary["score"]["mig_per_factor"]


def test_packed_factor_vae_equals_unpacked(tmp_path):
    hp = [({"gamma": 10.0}, 0), ({"gamma": 40.0}, 5)]
    mk = lambda name, h, s: cfg(tmp_path / f"{name}{s}", model="factor-vae", hparams=h, seed=s, steps=4, eval_every=2)  # noqa: E731
    runs = train_packed([mk("p", h, s) for h, s in hp], progress=False, backend="vmap")
    for run, (h, s) in zip(runs, hp):
        ref = train(mk("u", h, s), progress=False).dir
        assert_close_runs(run.dir, ref)
        da = load_file(checkpoint.find(run.dir) / checkpoint.OBJECTIVE_FILE)
        db = load_file(checkpoint.find(ref) / checkpoint.OBJECTIVE_FILE)
        for k in da:  # the discriminators trained alike too
            torch.testing.assert_close(da[k], db[k], atol=1e-5, rtol=0)


@pytest.mark.parametrize("model, hp", [
    ("beta-tcvae", [{"beta": 2.0}, {"beta": 8.0}]),
    ("dip-vae-ii", [{"lambda_od": 1.0}, {"lambda_od": 20.0, "lambda_d": 5.0}]),
    ("annealed-vae", [{"c_max": 5.0, "anneal_steps": 2.0}, {"gamma": 10.0, "anneal_steps": 0.0}]),
])
def test_packs_with_batched_terms_equal_runs_alone(tmp_path, model, hp):
    assert packed._batched_terms(objectives.get(model))
    mk = lambda name, h, s: cfg(tmp_path / f"{name}{s}", model=model, hparams=h, seed=s, steps=4, eval_every=2)  # noqa: E731
    runs = train_packed([mk("p", h, s) for s, h in enumerate(hp)], progress=False, backend="vmap")
    for s, (run, h) in enumerate(zip(runs, hp)):
        assert_close_runs(run.dir, train(mk("u", h, s), progress=False).dir)


def test_a_second_ctrl_c_during_one_runs_evaluation_saves_no_run_of_the_pack_at_that_step(tmp_path, monkeypatch):
    """Ctrl-C while run 0 scores step 3: run 1 has not evaluated step 3 either, so neither saves
    there (last checkpoint: step 2); the resumed pack redoes step 3 and ends as the uninterrupted one."""
    from untwine import hooks

    mk = lambda name: [bvae(tmp_path, name, b, s, score="mig", checkpoint_every=2) for b, s in BETAS[:2]]  # noqa: E731
    whole = train_packed(mk("whole"), progress=False)
    real, calls = hooks.run_scores, []

    def interrupted_at_3(run, data, names):
        calls.append(names)
        if len(calls) == 3:  # step 0: run 0, run 1; step 3: run 0
            raise KeyboardInterrupt
        return real(run, data, names)

    monkeypatch.setattr(hooks, "run_scores", interrupted_at_3)
    with pytest.raises(KeyboardInterrupt):
        train_packed(mk("p"), progress=False)
    for c in mk("p"):
        s = json.loads((Path(c.out) / "summary.json").read_text())
        assert s["error"].startswith("interrupted before step 3's evaluation was written; last checkpoint: step 2")
        assert checkpoint.load_state(checkpoint.find(Path(c.out)))["step"] == 2
    monkeypatch.setattr(hooks, "run_scores", real)
    for run, ref in zip(train_packed(mk("p"), progress=False, resume=True), whole):
        rows, ref_rows = ([json.loads(ln) for ln in (d / "metrics.jsonl").read_text().splitlines()]
                          for d in (run.dir, ref.dir))
        assert [(r["step"], r["split"]) for r in rows] == [(r["step"], r["split"]) for r in ref_rows]
        for r, q in zip(rows, ref_rows):
            key = "mig" if r["split"] == "score" else "loss"
            assert r[key] == pytest.approx(q[key], rel=1e-4, abs=1e-4), (r["step"], r["split"])
        wa, wb = weights(run.dir), weights(ref.dir)
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], atol=1e-5, rtol=0, msg=k)


def test_a_packed_run_resumes_alone(alone, tmp_path):
    """A packed run's checkpoint (optimizer state sliced from the stacked Adam) resumes with train()."""
    short = [bvae(tmp_path, "p", b, s, steps=3) for b, s in BETAS]
    train_packed(short, progress=False, backend="loop")
    run = train(bvae(tmp_path, "p", *BETAS[1]), progress=False, resume=True)
    assert run.summary["steps"] == 6
    assert_close_runs(run.dir, alone[1])


def test_packed_resume_of_an_interrupted_pack(alone, tmp_path):
    train_packed([bvae(tmp_path, "p", b, s, steps=3) for b, s in BETAS], progress=False)
    runs = train_packed([bvae(tmp_path, "p", b, s) for b, s in BETAS], progress=False, resume=True)
    for run, ref in zip(runs, alone):
        assert run.summary["steps"] == 6
        assert_close_runs(run.dir, ref)


def test_a_diverging_run_fails_alone(tmp_path, monkeypatch):
    nan_loss_from(monkeypatch, beta=16.0, step=3)
    runs = train_packed([bvae(tmp_path, "p", b, s) for b, s in BETAS], progress=False)
    assert [r.summary["status"] for r in runs] == ["finished", "finished", "failed"]
    assert "loss became nan at step 4" in runs[2].summary["error"]
    assert runs[0].summary["steps"] == 6 and runs[2].summary["steps"] == 5  # found at the next check
    assert checkpoint.load_state(checkpoint.find(runs[2].dir))["step"] == 3  # the last good one


def test_a_diverging_run_fails_alone_with_batched_terms(tmp_path, monkeypatch):
    cls = objectives.get("beta-vae")
    orig, calls = cls.terms_packed.__func__, []

    def terms_packed(c, objs, x, mu, logvar, z, logits, step):
        calls.append(step)
        t = orig(c, objs, x, mu, logvar, z, logits, step)
        scale = torch.tensor([float("nan") if o.hparams["beta"] == 16.0 and step >= 3 else 1.0 for o in objs])
        return {**t, "loss": t["loss"] * scale}

    monkeypatch.setattr(cls, "terms_packed", classmethod(terms_packed))
    runs = train_packed([bvae(tmp_path, "p", b, s) for b, s in BETAS], progress=False)
    assert calls == list(range(6))  # the pack computed its terms in one call per step
    assert [r.summary["status"] for r in runs] == ["finished", "finished", "failed"]
    assert "loss became nan at step 4" in runs[2].summary["error"]
    assert runs[0].summary["steps"] == 6 and runs[2].summary["steps"] == 5


@pytest.mark.parametrize("backend", ["loop", "vmap"])
def test_a_diverged_run_is_no_longer_computed_and_the_others_equal_their_runs_alone(alone, tmp_path, monkeypatch,
                                                                                     backend):
    nan_loss_from(monkeypatch, beta=16.0, step=3)
    cls = objectives.get("beta-vae")
    diverging, computed = cls.terms, []

    def terms(self, x, mu, logvar, z, logits, step):  # which run's terms were computed at which step
        if torch.is_grad_enabled():
            computed.append((self.hparams["beta"], step))
        return diverging(self, x, mu, logvar, z, logits, step)

    monkeypatch.setattr(cls, "terms", terms)
    runs = train_packed([bvae(tmp_path, "p", b, s) for b, s in BETAS], progress=False, backend=backend)
    # NaN from step 4 (index 3), found at the check after step 5: its steps 6.. are never computed
    assert sorted(st for b, st in computed if b == 16.0) == [0, 1, 2, 3, 4]
    for beta, _ in BETAS[:2]:
        assert sorted(st for b, st in computed if b == beta) == list(range(6))
    for run, ref in zip(runs[:2], alone[:2]):  # the others: the same numbers as alone
        assert run.summary["status"] == "finished" and run.summary["steps"] == 6
        assert_close_runs(run.dir, ref)
    failed = json.loads((runs[2].dir / "summary.json").read_text())  # its folder says why it stopped
    assert failed["status"] == "failed" and failed["steps"] == 5
    assert failed["error"].startswith("FloatingPointError: loss became nan at step 4; the last good checkpoint "
                                      "(step 3) is kept in")
    assert checkpoint.load_state(checkpoint.find(runs[2].dir))["step"] == 3
    assert [r["step"] for r in rows(runs[2].dir)][-1] == 3  # nothing logged after its last good step


def test_a_lone_run_in_train_packed_takes_the_fast_path(tmp_path, monkeypatch):
    """K = 1 with backend "auto": no stacking (PackedStep is never built), same run as train()."""
    from untwine.train import loop

    monkeypatch.setattr(loop, "PackedStep", lambda *a: pytest.fail("a lone run must not be stacked"))
    run, = train_packed([bvae(tmp_path, "p", *BETAS[0], steps=3)], progress=False)
    ref = train(bvae(tmp_path, "u", *BETAS[0], steps=3), progress=False)
    assert_close_runs(run.dir, ref.dir, atol=0)


def rows(run_dir) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_close_json(x, y, where="") -> None:
    """Same JSON structure, keys and strings; numbers equal up to float rounding."""
    if isinstance(x, dict):
        assert isinstance(y, dict) and list(x) == list(y), where
        for k in x:
            assert_close_json(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y), where
        for i, (a, b) in enumerate(zip(x, y)):
            assert_close_json(a, b, f"{where}[{i}]")
    elif isinstance(x, float):
        assert y == pytest.approx(x, rel=1e-5, abs=1e-6), where
    else:
        assert x == y, where


def assert_same_books(a, b) -> None:
    """Equal metrics.jsonl rows and summaries (up to float rounding)."""
    ra, rb = rows(a), rows(b)
    assert_close_json(ra, rb, "metrics")  # same rows, same keys in the same order
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for part in ("status", "steps", "train", "val", "initial_val"):
        assert_close_json(sa[part], sb[part], part)


def spy_books(monkeypatch) -> list:
    """Records ``_Books.batched`` after every step of a pack."""
    seen = []
    orig = packed._Books.record

    def record(self, *a, **kw):
        orig(self, *a, **kw)
        seen.append(self.batched)

    monkeypatch.setattr(packed._Books, "record", record)
    return seen


def test_batched_bookkeeping_equals_per_run_bookkeeping(tmp_path, monkeypatch):
    """Runs with different log/eval intervals: the batched books (one StackedMeans) write what
    each run's own books write, also in a checkpoint taken mid eval interval, which resumes as a
    pack and alone."""
    ivals = [dict(log_every=2, eval_every=4), dict(log_every=3, eval_every=2), dict(log_every=1, eval_every=5)]
    mk = lambda name, i: bvae(tmp_path, name, *BETAS[i], **ivals[i])  # noqa: E731
    cls = objectives.get("beta-vae")
    orig, stop_at = cls.terms, []

    def terms(self, x, mu, logvar, z, logits, step):  # Ctrl-C during step 5: the checkpoint of step 3 stays
        if step in stop_at and torch.is_grad_enabled():  # not in evaluate()
            raise KeyboardInterrupt
        return orig(self, x, mu, logvar, z, logits, step)

    def interrupted(name: str) -> list:
        stop_at[:] = [4]
        with pytest.raises(KeyboardInterrupt):
            train_packed([mk(name, i) for i in range(3)], progress=False)
        stop_at.clear()
        return [checkpoint.load_state(checkpoint.find(Path(mk(name, i).out)))["running"] for i in range(3)]

    patch_terms(monkeypatch, cls.name, terms)
    seen = spy_books(monkeypatch)
    batched = train_packed([mk("b", i) for i in range(3)], progress=False)
    assert seen == [True] * 6
    mid = interrupted("r")
    assert [r["count"] for r in mid] == [3, 1, 3]
    resumed = train_packed([mk("r", i) for i in range(3)], progress=False, resume=True)
    interrupted("a")
    alone = train(mk("a", 0), progress=False, resume=True)
    seen.clear()
    monkeypatch.setattr(packed, "_same_shapes", lambda terms: False)
    per_run = train_packed([mk("p", i) for i in range(3)], progress=False)
    assert seen == [False] * 6
    for a, b in zip(mid, interrupted("q")):  # the running means a checkpoint holds
        assert a["count"] == b["count"] and list(a["sums"]) == list(b["sums"])
        for k in a["sums"]:  # each run's own sums, not a view of the pack's
            assert a["sums"][k].untyped_storage().nbytes() == b["sums"][k].untyped_storage().nbytes(), k
            torch.testing.assert_close(a["sums"][k], b["sums"][k], rtol=1e-5, atol=1e-5)
    for b, r, p in zip(batched, resumed, per_run):
        assert_same_books(b.dir, p.dir)
        assert_same_books(r.dir, p.dir)
    assert_same_books(alone.dir, per_run[0].dir)


def test_terms_that_change_shape_switch_to_per_run_bookkeeping(tmp_path, monkeypatch):
    cls = objectives.get("beta-vae")
    orig = cls.terms

    def terms(self, x, mu, logvar, z, logits, step):
        t = orig(self, x, mu, logvar, z, logits, step)
        return {**t, "late": t["kl"].detach()} if self.hparams["beta"] == 16.0 and step >= 4 else t

    patch_terms(monkeypatch, cls.name, terms)
    seen = spy_books(monkeypatch)
    runs = train_packed([bvae(tmp_path, "p", b, s, eval_every=6) for b, s in BETAS], progress=False)
    assert seen == [True] * 4 + [False] * 2
    monkeypatch.setattr(packed, "_same_shapes", lambda terms: False)
    refs = train_packed([bvae(tmp_path, "r", b, s, eval_every=6) for b, s in BETAS], progress=False)
    for run, ref in zip(runs, refs):
        assert_same_books(run.dir, ref.dir)
    assert "late" in rows(runs[2].dir)[-2] and "late" not in rows(runs[1].dir)[-2]


def test_a_pack_of_mixed_objectives_books_run_by_run(tmp_path, monkeypatch):
    """Terms with other keys (beta-TCVAE logs mi, tc, dwkl): per-run books, each run as alone."""
    def mk(name: str, model: str, s: int) -> RunConfig:
        return cfg(tmp_path / f"{name}-{model}", model=model, seed=s, steps=4, eval_every=2)

    specs = [("beta-vae", 0), ("beta-tcvae", 3)]
    seen = spy_books(monkeypatch)
    runs = train_packed([mk("p", m, s) for m, s in specs], progress=False)
    assert seen == [False] * 4
    for run, (m, s) in zip(runs, specs):
        ref = train(mk("u", m, s), progress=False).dir
        assert_close_runs(run.dir, ref)
        assert_same_books(run.dir, ref)


def test_deterministic_terms_draw_no_random_numbers():
    """train_packed skips the RNG swap around the terms of objectives with random_terms = False:
    in training they must not draw."""
    names = [n for n in objectives.names() if not objectives.get(n).random_terms]
    assert names
    for name in names:
        obj = objectives.build(name, dataset_size=100, latents=3)
        mu, logvar = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(4, 3)
        x, logits = torch.rand(4, 1, 64, 64), torch.randn(4, 1, 64, 64, requires_grad=True)
        before = torch.get_rng_state()
        obj.terms(x, mu, logvar, z, logits, 5)["loss"].backward()
        assert torch.equal(torch.get_rng_state(), before), name


def test_terms_that_draw_use_their_runs_random_stream(tmp_path, monkeypatch):
    """Objectives with random_terms = True get their run's RNG around terms, so random draws
    there leave each run equal to its run alone (and without the swap they would not)."""
    cls = objectives.get("beta-vae")
    orig = cls.terms

    def terms(self, x, mu, logvar, z, logits, step):
        t = orig(self, x, mu, logvar, z, logits, step)
        return {**t, "loss": t["loss"] + 0.0 * torch.randn(())}  # same loss, one draw

    patch_terms(monkeypatch, cls.name, terms)
    two = BETAS[:2]
    alone = [train(bvae(tmp_path, "u", b, s, steps=3), progress=False).dir for b, s in two]
    unswapped = train_packed([bvae(tmp_path, "n", b, s, steps=3) for b, s in two], progress=False)
    assert not torch.equal(weights(unswapped[1].dir)["decoder.fc.0.weight"], weights(alone[1])["decoder.fc.0.weight"])
    monkeypatch.setattr(cls, "random_terms", True)
    runs = train_packed([bvae(tmp_path, "p", b, s, steps=3) for b, s in two], progress=False)
    for run, ref in zip(runs, alone):
        assert_close_runs(run.dir, ref)


def test_next_batches_equal_each_samplers_next():
    data = squares()
    rows = torch.arange(0, len(data), 3)
    mk = lambda: [BatchSampler(data, 8, rows, seed=s) for s in (0, 5, 9)]  # noqa: E731
    a, b = mk(), mk()
    for _ in range(3):
        assert torch.equal(packed._next_batches(a), torch.stack([s.next() for s in b]))


def test_loop_backend_gives_each_model_channels_last_views_of_the_stacked_weights():
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(VAE("conv64", 1, 3))
    before = [{n: p.detach().clone() for n, p in m.named_parameters()} for m in models]
    pack = PackedVAE(models, "loop")
    for k, (m, b) in enumerate(zip(models, before)):
        for n, p in m.named_parameters():
            assert torch.equal(p, b[n]) and p.data_ptr() == pack.params[n][k].data_ptr(), n
            if p.dim() == 4:  # as Module.to(memory_format=torch.channels_last) lays out a run alone
                assert p.is_contiguous(memory_format=torch.channels_last), n


@pytest.mark.parametrize("kw, match", [
    ({"latents": 4}, r"configs\[1\] has latents=4 but configs\[0\] has 3; a pack shares dataset"),
    ({"lr": 1e-3}, r"configs\[1\] has lr=0.001 but configs\[0\] has 0.0001"),
    ({"out": "SAME"}, r"two runs of the pack write to the same out folder"),
])
def test_unpackable_configs_are_refused(tmp_path, kw, match):
    a = cfg(tmp_path / "a")
    b = cfg(tmp_path / "b", seed=1, **kw) if "out" not in kw else cfg(tmp_path / "a", seed=1)
    with pytest.raises(ValueError, match=match):
        train_packed([a, b], progress=False)
    assert not (tmp_path / "a").exists()


def test_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match=r"unknown packed backend 'gpu'; choose one of auto, vmap, loop"):
        train_packed([cfg(tmp_path / "a")], progress=False, backend="gpu")


# ---------------------------------------------------------------------- speed settings of the CLI
def test_console_script_reexecs_once_with_malloc_settings(monkeypatch):
    """``untwine`` (argv=None) re-executes itself with the glibc malloc settings; main([...]) never."""
    import sys

    from untwine import cli

    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda exe, args, env: calls.append((exe, args, env)))
    monkeypatch.setattr(sys, "platform", "linux")
    for k in (*cli.MALLOC_ENV, "UNTWINE_NO_REEXEC"):
        monkeypatch.delenv(k, raising=False)
    cli._reexec_with_malloc_env(["train", "--steps", "3"])
    (exe, args, env), = calls
    assert args == [sys.executable, "-m", "untwine.cli", "train", "--steps", "3"]
    assert {k: env[k] for k in cli.MALLOC_ENV} == cli.MALLOC_ENV
    monkeypatch.setenv("UNTWINE_NO_REEXEC", "1")
    cli._reexec_with_malloc_env([])
    monkeypatch.delenv("UNTWINE_NO_REEXEC")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")  # the user's own setting wins
    cli._reexec_with_malloc_env([])
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert cli.main([]) == 1  # in-process (tests, Python API): prints help, never re-executes
    assert len(calls) == 1


@pytest.mark.parametrize("backend", ["vmap", "loop"])
def test_packed_bf16_forward_matches_autocast_alone(backend):
    from untwine.train.speed import AutocastForward

    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(VAE("conv64", 1, 4))
    x = torch.rand(3, 8, 1, 64, 64)
    eps = torch.stack([torch.manual_seed(k) and torch.randn(8, 4) for k in range(3)])
    out = PackedVAE(models, backend, "bf16")(x, eps)
    fp32 = PackedVAE(models, backend)(x, eps)
    assert [t.dtype for t in out] == [torch.float32] * 4
    for k, m in enumerate(models):
        torch.manual_seed(k)  # AutocastForward draws the same eps
        ref = AutocastForward(m, "cpu")(x[k])
        for got, want in zip((t[k] for t in out), ref):
            if backend == "loop":  # the same bfloat16 convolutions as alone
                torch.testing.assert_close(got, want, atol=0, rtol=0)
            else:  # grouped bfloat16 convolutions: a few bfloat16 ulps (~1e-3 here) apart
                torch.testing.assert_close(got, want, atol=4e-3, rtol=0)
    assert not torch.equal(out[3], fp32[3])  # bfloat16 really ran


def test_packed_bf16_runs_equal_bf16_runs_alone(tmp_path):
    two = BETAS[:2]
    alone = [train(bvae(tmp_path, "u", b, s, steps=3, precision="bf16"), progress=False).dir for b, s in two]
    runs = train_packed([bvae(tmp_path, "p", b, s, steps=3, precision="bf16") for b, s in two],
                        progress=False, backend="loop")
    for run, ref in zip(runs, alone):
        assert run.config.precision == "bf16"
        assert_close_runs(run.dir, ref, atol=1e-6)


def test_a_pack_with_compile_set_trains_uncompiled_and_says_so(tmp_path):
    with pytest.warns(UserWarning, match="train_packed runs its models uncompiled"):
        runs = train_packed([bvae(tmp_path, "p", b, s, steps=2, compile="on") for b, s in BETAS[:2]],
                            progress=False)
    assert [r.summary["status"] for r in runs] == ["finished", "finished"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_packed_on_cuda_equals_runs_alone_and_shares_one_image_copy(tmp_path):
    data = squares()
    kw = dict(steps=4, device="cuda")
    alone = [train(bvae(tmp_path, "u", b, s, **kw), progress=False, data=data).dir for b, s in BETAS]
    runs = train_packed([bvae(tmp_path, "p", b, s, **kw) for b, s in BETAS], progress=False, data=data)
    for run, ref in zip(runs, alone):
        assert run.summary["device"].startswith("cuda")
        assert_close_runs(run.dir, ref, atol=1e-4)
    assert len(data.__dict__.get("_device_images", {})) == 1  # one device copy for every run
