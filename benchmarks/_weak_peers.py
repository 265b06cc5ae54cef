"""Workers of ``crosscheck_weak.py``: the peers' own weak-supervision code on fixed arrays. Each runs
in the peer's virtual environment, so this module imports only the standard library at the top::

    PYTHON benchmarks/_weak_peers.py SIDE --work DIR [--weak-vae PATH] [--threads 1]

reads ``DIR/arrays.npz`` (written by ``crosscheck_weak.py``), writes ``DIR/SIDE.npz`` and prints
one JSON line (versions, what was stubbed). SIDE is ``disent`` or ``dlib``. Every array is float64
on every side; the mask convention of the results is untwine's: True where a dimension keeps its
own posterior (is *not* shared).

* ``disent`` (disent 0.8.0): ``AdaVae``'s own helpers (``compute_deltas_from_posteriors``,
  ``estimate_shared_mask``, ``compute_average_gvae``, ``compute_average_ml_vae``,
  ``hook_intercept_ds``) and its training step ``do_training_step`` on posteriors made by its
  ``LatentDistsHandlerNormal`` from the fixed means/log-variances. Two things are fixed from
  outside: the encoder returns the stored ``(mean, logvar)`` of the first, then the second
  observation (it ignores its input), and ``Normal.rsample`` draws the stored noise, so that
  ``z`` is the same as the other sides'. disent has no label-supervised GVAE/ML-VAE (its
  ``estimate_shared_mask`` docstring lists it as a TODO), so the ``gvae``/``ml-vae`` rows are
  dlib's alone. The dlib-matching options: ``ada_thresh_mode="kl"``, ``ada_thresh_ratio=0.5``,
  and the pair given in the order (second image, first image): disent's ``"kl"`` is
  ``KL(q_obs1 || q_obs0)``, dlib's ``compute_kl`` is ``2 KL(q_first || q_second)`` (the factor
  does not move the threshold; the loss is symmetric in the two observations). disent's defaults
  (``"symmetric_kl"``, pair in its natural order) are run too.
* ``dlib`` (disentanglement_lib): ``methods/weak/weak_vae.py`` is not in the PyPI release 1.5 (it
  was added in 2020), so ``--weak-vae`` (``$DLIB_WEAK_VAE``) points at that file from GitHub (see
  ``crosscheck_weak.py``); it is loaded beside the PyPI package's ``losses``, ``vae`` and
  ``optimizers``. TensorFlow 2 (CPU), graph mode through ``tensorflow.compat.v1``. Stubbed
  (modules its imports name that TensorFlow 2 no longer ships or that these functions do not
  use): ``gin.tf``, ``tensorflow_probability`` (used only for ``subtract_true_image_entropy``),
  ``tensorflow_hub``, ``tensorflow.contrib``, ``tensorflow_estimator``'s ``TPUEstimatorSpec`` (a
  record of its arguments) and, if missing, ``tf.compat.v1.estimator.ModeKeys``. Called as they
  are: ``compute_kl``, ``aggregate_argmax``, ``aggregate_labels``, ``discretize_in_bins`` and the
  four models' ``model_fn`` (EVAL mode: the aggregations inline in it, the reconstruction loss
  through ``losses.make_reconstruction_loss`` bound by gin to ``bernoulli_loss``,
  ``vae.compute_gaussian_kl``, ``regularizer``); the encoder, decoder and sampler of the model
  (``gaussian_encoder``, ``decode``, ``sample_from_latent_distribution``) are overridden to give
  the stored posteriors, the fixed linear decoder and the stored noise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from pathlib import Path

DLIB_WEAK_VAE = os.environ.get("DLIB_WEAK_VAE", "/tmp/dlib-weak/weak_vae.py")
OBJECTIVES = ("gvae", "ml-vae", "ada-gvae", "ada-ml-vae")


def load(work: Path) -> dict:
    import numpy as np

    with np.load(work / "arrays.npz") as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------------- disent
def worker_disent(a: argparse.Namespace) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _peers import torchvision_shim

    torchvision_shim()
    import logging
    import warnings

    import numpy as np
    import torch
    from disent.frameworks.helper.latent_distributions import LatentDistsHandlerNormal
    from disent.frameworks.vae import AdaVae
    from disent.frameworks.vae._weaklysupervised__adavae import (
        compute_average_gvae,
        compute_average_ml_vae,
    )
    from disent.model import AutoEncoder, DisentDecoder, DisentEncoder
    from torch.distributions import Normal

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    arr = load(a.work)
    t = {k: torch.from_numpy(v) for k, v in arr.items()}
    d = t["mu1"].shape[1]
    x_shape = tuple(arr["x"].shape[1:])
    out: dict[str, np.ndarray] = {}
    handler = LatentDistsHandlerNormal(kl_mode="direct", reduction="mean_sum")

    def dists(mu, lv):  # disent's own parametrisation: Normal(mu, exp(0.5 logvar)) and N(0, 1)
        return handler.encoding_to_dists((mu, lv))

    def own(share):  # disent's share mask (True: averaged) -> untwine's convention
        return (~share).numpy()

    # -- the pieces on the fixed arrays and on the random set
    for sfx, (m1, l1, m2, l2) in (("", (t["mu1"], t["lv1"], t["mu2"], t["lv2"])),
                                  ("r_", (t["r_mu1"], t["r_lv1"], t["r_mu2"], t["r_lv2"]))):
        q1, q2 = dists(m1, l1)[0], dists(m2, l2)[0]
        # dlib's direction: d0 = the second image, d1 = the first -> KL(q1 || q2); x2 = dlib's compute_kl
        kl = AdaVae.compute_deltas_from_posteriors(q2, q1, thresh_mode="kl")
        out[sfx + "div"] = (2.0 * kl).numpy()
        out[sfx + "mask_ada"] = own(AdaVae.estimate_shared_mask(kl, ratio=0.5))
        # disent's defaults: symmetric KL, and "kl" in its natural order (KL(q2 || q1))
        sym = AdaVae.compute_deltas_from_posteriors(q1, q2, thresh_mode="symmetric_kl")
        out[sfx + "div_sym"] = sym.numpy()
        out[sfx + "mask_default"] = own(AdaVae.estimate_shared_mask(sym, ratio=0.5))
        nat = AdaVae.compute_deltas_from_posteriors(q1, q2, thresh_mode="kl")
        out[sfx + "div_kl_natural"] = (2.0 * nat).numpy()
        out[sfx + "mask_kl_natural"] = own(AdaVae.estimate_shared_mask(nat, ratio=0.5))
        if sfx:
            continue
        g = compute_average_gvae(q1, q2)
        out["gvae_mean"], out["gvae_logvar"] = g.loc.numpy(), torch.log(g.scale.pow(2)).numpy()
        p = compute_average_ml_vae(q1, q2)
        out["mlvae_mean"], out["mlvae_logvar"] = p.loc.numpy(), torch.log(p.scale.pow(2)).numpy()

    # -- the training step: AdaVae.do_training_step with a fixed encoder, decoder and noise
    class StoredEncoder(DisentEncoder):
        """Returns the stored (mean, logvar) of observation 0, then of observation 1 (input ignored)."""

        def __init__(self):
            super().__init__(x_shape=x_shape, z_size=d, z_multiplier=2)
            self.queue: list[torch.Tensor] = []

        def encode(self, x):
            return self.queue.pop(0)

    class LinearDecoder(DisentDecoder):
        def __init__(self):
            super().__init__(x_shape=x_shape, z_size=d)

        def decode(self, z):
            return (z @ t["W"] + t["b"]).view(-1, *x_shape)

    noise: list[torch.Tensor] = []
    orig_rsample = Normal.rsample

    def stored_rsample(self, sample_shape=()):
        return self.loc + self.scale * noise.pop(0)

    Normal.rsample = stored_rsample  # type: ignore[method-assign]

    def step(rows: torch.Tensor, average_mode: str, thresh_mode: str, swap: bool, key: str) -> None:
        b = t["mu1"].shape[0]
        x1, x2 = t["x"][:b][rows], t["x"][b:][rows]
        eps1, eps2 = t["eps"][:b][rows], t["eps"][b:][rows]
        enc1 = torch.cat([t["mu1"][rows], t["lv1"][rows]], 1)
        enc2 = torch.cat([t["mu2"][rows], t["lv2"][rows]], 1)
        encoder = StoredEncoder()
        model = AutoEncoder(encoder=encoder, decoder=LinearDecoder()).double()
        cfg = AdaVae.cfg(recon_loss="bce", loss_reduction="mean_sum", beta=float(arr["beta"]),
                         ada_average_mode=average_mode, ada_thresh_mode=thresh_mode, ada_thresh_ratio=0.5)
        module = AdaVae(model=model, cfg=cfg)
        orig_hook, orig_rec, orig_reg = module.hook_intercept_ds, module.compute_ave_recon_loss, module.compute_ave_reg_loss
        seen: dict = {}

        def hook(ds_posterior, ds_prior):
            new, prior, logs = orig_hook(ds_posterior, ds_prior)
            seen["new"] = new
            return new, prior, logs

        def rec_fn(*args):
            r = orig_rec(*args)
            seen["rec"] = r[0]
            return r

        def reg_fn(*args):
            r = orig_reg(*args)
            seen["kl"] = r[1]["kl_loss"]
            return r

        module.hook_intercept_ds, module.compute_ave_recon_loss, module.compute_ave_reg_loss = hook, rec_fn, reg_fn
        # the observations in the order disent is given them
        xs, encs, epss = ((x2, x1), (enc2, enc1), (eps2, eps1)) if swap else ((x1, x2), (enc1, enc2), (eps1, eps2))
        encoder.queue[:] = list(encs)
        noise[:] = list(epss)
        with torch.no_grad():
            loss = module.do_training_step({"x_targ": xs}, 0)
        assert not encoder.queue and not noise, "the encoder or the sampler was not called twice"
        new = seen["new"]
        first, second = (new[1], new[0]) if swap else (new[0], new[1])
        out[f"agg_mean/{key}"] = torch.cat([first.loc, second.loc]).numpy()
        out[f"agg_logvar/{key}"] = torch.log(torch.cat([first.scale, second.scale]).pow(2)).numpy()
        out[f"loss/{key}"] = np.array(float(loss))
        out[f"rec/{key}"] = np.array(float(seen["rec"]))
        out[f"kl/{key}"] = np.array(float(seen["kl"]))

    every = torch.arange(t["mu1"].shape[0])
    for tag, rows in (("", every), ("tf_", t["tie_free"])):
        step(rows, "gvae", "kl", True, tag + "ada-gvae")
        step(rows, "ml-vae", "kl", True, tag + "ada-ml-vae")
        step(rows, "gvae", "symmetric_kl", False, tag + "ada-gvae@default")
        step(rows, "ml-vae", "symmetric_kl", False, tag + "ada-ml-vae@default")
        step(rows, "gvae", "kl", False, tag + "ada-gvae@kl-natural")
    Normal.rsample = orig_rsample  # type: ignore[method-assign]
    np.savez(a.work / "disent.npz", **out)
    from importlib import metadata

    return {"versions": {p: metadata.version(p) for p in ("disent", "torch", "lightning", "numpy")},
            "defaults": {k: getattr(AdaVae.cfg(), k) for k in ("ada_average_mode", "ada_thresh_mode", "ada_thresh_ratio")}}


# ---------------------------------------------------------------------- disentanglement_lib
def _stub(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def worker_dlib(a: argparse.Namespace) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import importlib.util

    import numpy as np
    import tensorflow as tf2

    tf2.get_logger().setLevel("ERROR")
    tf2.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf2.config.threading.set_inter_op_parallelism_threads(a.threads)
    import tensorflow.compat.v1 as tf  # the module object weak_vae.py imports (not tf2.compat.v1)

    stubbed = ["gin.tf", "tensorflow_probability", "tensorflow_hub", "tensorflow.contrib",
               "tensorflow_estimator...tpu_estimator.TPUEstimatorSpec"]
    _stub("gin.tf")
    _stub("tensorflow_probability")
    _stub("tensorflow_hub")
    _stub("tensorflow.contrib", tpu=types.SimpleNamespace())
    for name in ("tensorflow_estimator", "tensorflow_estimator.python", "tensorflow_estimator.python.estimator",
                 "tensorflow_estimator.python.estimator.tpu"):
        _stub(name)
    _stub("tensorflow_estimator.python.estimator.tpu.tpu_estimator",
          TPUEstimatorSpec=lambda **kw: types.SimpleNamespace(**kw))
    if not hasattr(tf, "estimator"):
        tf.estimator = types.SimpleNamespace(ModeKeys=types.SimpleNamespace(TRAIN="train", EVAL="eval", PREDICT="infer"))
        stubbed.append("tf.compat.v1.estimator.ModeKeys")
    import gin
    from disentanglement_lib.methods.shared import losses
    from disentanglement_lib.methods.unsupervised import vae  # noqa: F401 (weak_vae's import)

    path = Path(a.weak_vae)
    if not path.exists():
        raise SystemExit(f"dlib's weak_vae.py not found at {path} (see crosscheck_weak.py)")
    spec = importlib.util.spec_from_file_location("disentanglement_lib.methods.weak.weak_vae", path)
    wv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wv)
    gin.clear_config()
    gin.bind_parameter("reconstruction_loss.loss_fn", losses.bernoulli_loss)

    arr = load(a.work)
    b, d = arr["mu1"].shape
    x = np.transpose(arr["x"], (0, 2, 3, 1))  # C x H x W (untwine's layout) -> dlib's H x W x C
    out: dict[str, np.ndarray] = {}

    def fixed(model_cls, rows):
        """dlib's model with the encoder, decoder and sampler replaced by the fixed arrays of ``rows``."""

        class Fixed(model_cls):
            def __init__(self):
                super().__init__(beta=float(arr["beta"]))
                self.enc = [(arr["mu1"][rows], arr["lv1"][rows]), (arr["mu2"][rows], arr["lv2"][rows])]
                self.eps = [arr["eps"][:b][rows], arr["eps"][b:][rows]]
                self.seen: list = []

            def gaussian_encoder(self, input_tensor, is_training):
                m, lv = self.enc.pop(0)  # model_fn encodes the first image, then the second
                return tf.constant(m), tf.constant(lv)

            def decode(self, latent_tensor, observation_shape, is_training):
                logits = tf.matmul(latent_tensor, tf.constant(arr["W"])) + tf.constant(arr["b"])
                return tf.reshape(logits, [-1] + list(observation_shape))

            def sample_from_latent_distribution(self, z_mean, z_logvar):
                return tf.add(z_mean, tf.exp(z_logvar / 2) * tf.constant(self.eps.pop(0)))

            def aggregate(self, z_mean, z_logvar, new_mean, new_log_var, labels, kl_per_point):
                r = super().aggregate(z_mean, z_logvar, new_mean, new_log_var, labels, kl_per_point)
                self.seen.append((new_mean, new_log_var, r))
                return r

        return Fixed()

    models = {"gvae": wv.GroupVAELabels, "ml-vae": wv.MLVaeLabels, "ada-gvae": wv.GroupVAEArgmax,
              "ada-ml-vae": wv.MLVaeArgmax}
    with tf.Graph().as_default():
        fetch = {}
        # the functions alone, on the fixed arrays and on the random set
        for sfx in ("", "r_"):
            m1, l1, m2, l2 = (tf.constant(arr[sfx + k]) for k in ("mu1", "lv1", "mu2", "lv2"))
            div = fetch[sfx + "div"] = wv.compute_kl(m1, m2, l1, l2)
            ones, zeros = tf.ones_like(m1), tf.zeros_like(m1)
            # the mask, read off the aggregation: the own value (1) where not shared, the new one (0) where shared
            fetch[sfx + "mask_ada"] = tf.equal(wv.aggregate_argmax(ones, ones, zeros, zeros, None, div)[0], 1.0)
            fetch[sfx + "bins"] = tf.map_fn(wv.discretize_in_bins, div, tf.int32)
            if not sfx:
                onehot = tf.squeeze(tf.one_hot(tf.constant(arr["labels"]), d, dtype=tf.float64))
                fetch["mask_labels"] = tf.equal(wv.aggregate_labels(ones, ones, zeros, zeros, onehot, div)[0], 1.0)
        # the four models' model_fn, on every row and on the tie-free rows
        for tag, rows in (("", np.arange(b)), ("tf_", arr["tie_free"])):
            features = np.concatenate([x[:b][rows], x[b:][rows]], axis=1)  # the pair stacked along the height, as dlib's data
            for key, cls in models.items():
                with tf.variable_scope((tag + key).replace("-", "_")):
                    model = fixed(cls, rows)
                    spec_ = model.model_fn(tf.constant(features), tf.constant(arr["labels"][rows]),
                                           tf.estimator.ModeKeys.EVAL, {})
                assert not model.enc and not model.eps and len(model.seen) == 2
                (new_mean, new_lv, (am1, al1)), (_, _, (am2, al2)) = model.seen
                rec, _neg_elbo, _reg, kl = spec_.eval_metrics[1]
                fetch[f"agg_mean/{tag}{key}"] = tf.concat([am1, am2], 0)
                fetch[f"agg_logvar/{tag}{key}"] = tf.concat([al1, al2], 0)
                fetch[f"loss/{tag}{key}"], fetch[f"rec/{tag}{key}"], fetch[f"kl/{tag}{key}"] = spec_.loss, rec, kl
                if not tag and key in ("gvae", "ml-vae"):
                    name = "gvae" if key == "gvae" else "mlvae"
                    fetch[name + "_mean"], fetch[name + "_logvar"] = new_mean, new_lv
        with tf.Session() as sess:
            res = sess.run(fetch)
    for k, v in res.items():
        out[k] = np.asarray(v)
    np.savez(a.work / "dlib.npz", **out)
    import hashlib
    from importlib import metadata

    versions = {p: metadata.version(p) for p in ("disentanglement-lib", "tensorflow-cpu", "gin-config", "numpy")}
    commit = path.parent / "COMMIT"
    versions["weak_vae.py"] = (f"{commit.read_text().strip()[:12]} " if commit.exists() else "") + \
        f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    return {"versions": versions, "stubbed": stubbed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("side", choices=("disent", "dlib"))
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--weak-vae", default=DLIB_WEAK_VAE, help="dlib's methods/weak/weak_vae.py (GitHub)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    info = worker_disent(a) if a.side == "disent" else worker_dlib(a)
    print(json.dumps({"side": a.side, **info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
