"""Workers of ``bench_peers.py``. Each runs in one library's own virtual environment (untwine's,
disent's or disentangling-vae's), so this module imports only the standard library at the top::

    PYTHON benchmarks/_peers.py SIDE --steps N --warmup N --threads N --work DIR

prints one JSON line (images/s by wall and CPU time, precision, versions). SIDE is a training side
of ``bench_peers.SIDES`` or ``disent-metrics`` (disent's scores of the codes ``bench_peers.py``
saved in ``--work``). The recipes and what each side times are in ``bench_peers.py``'s docstring.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_WORK = Path(os.environ.get("UNTWINE_PEERS_DIR", "/tmp/untwine-peers"))
DISVAE_SRC = os.environ.get("DISVAE_SRC", "/tmp/disentangling-vae")

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
BETA, LATENTS, BATCH, LR = 4.0, 10, 64, 1e-3


# ---------------------------------------------------------------------- shared pieces (any venv)
def conv64_layers():
    """untwine's conv64 (``untwine.models.conv64``) as plain modules: encoder features, the two
    latent heads, decoder fc and deconv stacks. Same layers, same order, same parameter names."""
    from torch import nn

    features = nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 64, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 2, 2), nn.ReLU(),
        nn.Flatten(), nn.Linear(1024, 256), nn.ReLU())
    fc = nn.Sequential(nn.Linear(LATENTS, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU())
    deconv = nn.Sequential(
        nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
    return features, nn.Linear(256, LATENTS), nn.Linear(256, LATENTS), fc, deconv


def plain_vae():
    """:class:`PlainVAE`: untwine's conv64 as a plain ``nn.Module`` (its ``state_dict`` keys are
    untwine's, so a trained untwine model's weights load into it)."""
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.mu, self.logvar, _, _ = conv64_layers()

        def forward(self, x):
            h = self.features(x)
            return self.mu(h), self.logvar(h)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            _, _, _, self.fc, self.deconv = conv64_layers()

        def forward(self, z):
            return self.deconv(self.fc(z).view(-1, 64, 4, 4))

    class PlainVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = Encoder(), Decoder()

        def forward(self, x):
            mu, logvar = self.encoder(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return mu, logvar, self.decoder(z)

    return PlainVAE()


def torchvision_shim() -> None:
    """Let PyPI's torchvision 0.28.0 (a CUDA build) import beside the CPU build of torch 2.13.0.

    Its C extension fails to load (it links ``libc10_cuda.so``), and torchvision's import then
    stops registering fake kernels for ``torchvision::nms`` and ``torchvision::qnms``, two
    operators the extension would have defined. Defining their schemas here lets the pure-Python
    parts (transforms, which disent and disentangling-vae import) load; no operator is called."""
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018 - defined: the extension loaded, nothing to do
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    globals()["_TORCHVISION_LIB"] = lib  # keep the definitions alive


def load_images(work: Path):
    import numpy as np

    return np.load(work / "images.npy"), np.load(work / "factors.npy")


# ---------------------------------------------------------------------- speed workers
def worker_untwine(a: argparse.Namespace, precision: str) -> dict:
    from untwine.data import from_arrays
    from untwine.train import RunConfig, train

    imgs, f = load_images(a.work)
    data = from_arrays(imgs, f, FACTOR_NAMES, name="peers-dsprites", factor_sizes=FACTOR_SIZES)
    with tempfile.TemporaryDirectory() as d:
        def cfg(out: str, steps: int) -> RunConfig:
            return RunConfig(model="beta-vae", hparams={"beta": BETA}, latents=LATENTS, steps=steps,
                             batch_size=BATCH, lr=LR, eval_images=BATCH, eval_every=steps,
                             checkpoint_every=steps, log_every=100, device="cpu", precision=precision,
                             threads=a.threads, out=str(Path(d) / out))

        train(cfg("warm", a.warmup), progress=False, data=data)
        c = time.process_time()
        run = train(cfg("run", a.steps), progress=False, data=data)  # setup, evaluations, checkpoint included
        return {"images_per_s": float(run.summary["images_per_s"]), "precision": run.config.precision,
                "cpu_images_per_s": a.steps * BATCH / (time.process_time() - c)}


def worker_plain(a: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    imgs, _ = load_images(a.work)
    data = torch.from_numpy(imgs).float().div(255).unsqueeze(1)
    torch.manual_seed(0)
    model = plain_vae()
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def step() -> float:
        x = data[torch.randint(len(data), (BATCH,))]
        mu, logvar, logits = model(x)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        loss = rec + BETA * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(a.steps):
        step()
    return {"images_per_s": a.steps * BATCH / (time.perf_counter() - t), "precision": "fp32",
            "cpu_images_per_s": a.steps * BATCH / (time.process_time() - c)}


def worker_disent(a: argparse.Namespace, variant: str) -> dict:
    torchvision_shim()
    import logging
    import warnings

    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from disent.dataset import DisentDataset
    from disent.dataset.data import ArrayDataset
    from disent.dataset.sampling import SingleSampler
    from disent.dataset.transform import ToImgTensorF32
    from disent.frameworks.vae import BetaVae
    from disent.model import AutoEncoder, DisentDecoder, DisentEncoder
    from disent.model.ae import DecoderConv64, EncoderConv64

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    imgs, _ = load_images(a.work)
    x_shape = (1, 64, 64)

    class Conv64Encoder(DisentEncoder):  # untwine's conv64 in disent's wrapper
        def __init__(self, x_shape=x_shape, z_size=LATENTS, z_multiplier=2):
            super().__init__(x_shape=x_shape, z_size=z_size, z_multiplier=z_multiplier)
            self.features, self.mu, self.logvar, _, _ = conv64_layers()

        def encode(self, x):
            h = self.features(x)
            return torch.cat([self.mu(h), self.logvar(h)], dim=1)

    class Conv64Decoder(DisentDecoder):
        def __init__(self, x_shape=x_shape, z_size=LATENTS, z_multiplier=1):
            super().__init__(x_shape=x_shape, z_size=z_size, z_multiplier=z_multiplier)
            _, _, _, self.fc, self.deconv = conv64_layers()

        def decode(self, z):
            return self.deconv(self.fc(z).view(-1, 64, 4, 4))

    torch.manual_seed(0)
    dataset = DisentDataset(dataset=ArrayDataset(imgs), sampler=SingleSampler(), transform=ToImgTensorF32())
    loader = DataLoader(dataset=dataset, batch_size=BATCH, shuffle=True, num_workers=0)
    if variant == "disent-net":
        model = AutoEncoder(encoder=Conv64Encoder(), decoder=Conv64Decoder())
    else:
        model = AutoEncoder(encoder=EncoderConv64(x_shape=x_shape, z_size=LATENTS, z_multiplier=2),
                            decoder=DecoderConv64(x_shape=x_shape, z_size=LATENTS))
    module = BetaVae(model=model, cfg=BetaVae.cfg(optimizer="adam", optimizer_kwargs=dict(lr=LR),
                                                   recon_loss="bce", loss_reduction="mean_sum", beta=BETA))
    stamps: dict[str, float] = {}

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == a.warmup and "start" not in stamps:
                stamps["start"], stamps["cpu_start"] = time.perf_counter(), time.process_time()

        def on_train_end(self, trainer, pl_module):
            stamps["end"], stamps["cpu_end"] = time.perf_counter(), time.process_time()
            stamps["steps"] = trainer.global_step

    trainer = L.Trainer(max_steps=a.warmup + a.steps, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        precision="bf16-mixed" if variant == "disent-bf16" else "32-true", callbacks=[Timer()])
    trainer.fit(module, loader)
    steps = stamps["steps"] - a.warmup
    return {"images_per_s": steps * BATCH / (stamps["end"] - stamps["start"]),
            "cpu_images_per_s": steps * BATCH / (stamps["cpu_end"] - stamps["cpu_start"]),
            "precision": "bf16-mixed" if variant == "disent-bf16" else "fp32"}


def worker_disvae(a: argparse.Namespace, variant: str) -> dict:
    torchvision_shim()
    import logging
    from collections import defaultdict

    import numpy as np
    import torch
    from torch import nn

    sys.path.insert(0, a.disvae_src)
    from disvae.models.losses import BetaHLoss
    from disvae.models.vae import VAE, init_specific_model
    from disvae.training import Trainer
    from utils.datasets import get_dataloaders

    logging.getLogger().setLevel(logging.ERROR)
    imgs, f = load_images(a.work)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "dsprites"
        root.mkdir()
        # its DSprites class reads dsprite_train.npz: binary images (0/1) and latent values
        np.savez(root / "dsprite_train.npz", imgs=(imgs // 255).astype(np.uint8),
                 latents_values=np.concatenate([np.ones((len(f), 1)), f], axis=1).astype(np.float64))
        loader = get_dataloaders("dsprites", root=str(root), batch_size=BATCH, shuffle=True,
                                 logger=logging.getLogger("disvae"))

        class Conv64Encoder(nn.Module):  # untwine's conv64, disvae's encoder interface
            def __init__(self, img_size, latent_dim=LATENTS):
                super().__init__()
                self.features, self.mu, self.logvar, _, _ = conv64_layers()

            def forward(self, x):
                h = self.features(x)
                return self.mu(h), self.logvar(h)

        class Conv64Decoder(nn.Module):  # its loss takes probabilities: sigmoid output, as Burgess's
            def __init__(self, img_size, latent_dim=LATENTS):
                super().__init__()
                _, _, _, self.fc, self.deconv = conv64_layers()

            def forward(self, z):
                return torch.sigmoid(self.deconv(self.fc(z).view(-1, 64, 4, 4)))

        torch.manual_seed(0)
        if variant == "disvae-net":
            model = VAE((1, 64, 64), Conv64Encoder, Conv64Decoder, LATENTS)
        else:
            model = init_specific_model("Burgess", (1, 64, 64), LATENTS)
        loss_f = BetaHLoss(beta=BETA, rec_dist="bernoulli", steps_anneal=0)
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        trainer = Trainer(model, opt, loss_f, device=torch.device("cpu"), logger=logging.getLogger("disvae"),
                          save_dir=d, is_progress_bar=False)
        model.train()
        storer: dict = defaultdict(list)

        def batches():
            while True:
                yield from loader

        it = batches()
        for _ in range(a.warmup):
            trainer._train_iteration(next(it)[0], storer)
        t, c = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            trainer._train_iteration(next(it)[0], storer)
        return {"images_per_s": a.steps * BATCH / (time.perf_counter() - t), "precision": "fp32",
                "cpu_images_per_s": a.steps * BATCH / (time.process_time() - c)}


def run_worker(a: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(a.threads)
    side = a.worker
    if side == "untwine-auto":
        out = worker_untwine(a, "auto")
    elif side == "untwine-fp32":
        out = worker_untwine(a, "fp32")
    elif side == "plain":
        out = worker_plain(a)
    elif side.startswith("disent"):
        out = worker_disent(a, side)
    elif side.startswith("disvae"):
        out = worker_disvae(a, side)
    else:
        raise SystemExit(f"unknown side {side!r}")
    from importlib import metadata

    versions = {}
    for pkg in ("untwine", "disent", "lightning", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    if side.startswith("disvae"):
        git = subprocess.run(["git", "-C", a.disvae_src, "rev-parse", "HEAD"], capture_output=True, text=True)
        commit = Path(a.disvae_src) / "COMMIT"  # an exported tree: the commit written beside it
        versions["disentangling-vae"] = (git.stdout.strip() if git.returncode == 0 else
                                         commit.read_text().strip() if commit.exists() else f"? ({a.disvae_src})")
    print(json.dumps({"side": side, **out, "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "versions": versions}))


# ---------------------------------------------------------------------- metric workers
def worker_disent_metrics(a: argparse.Namespace) -> None:
    """disent's metric code on the saved arrays, and its FactorVAE score / sampled MIG through its
    dataset + representation-function API with the untwine model's encoder."""
    torchvision_shim()
    import logging
    import warnings

    import numpy as np
    import torch

    from disent.dataset import DisentDataset
    from disent.dataset.data import GroundTruthData
    from disent.metrics import metric_factor_vae, metric_mig
    from disent.metrics._dci import _compute_dci
    from disent.metrics._mig import _compute_mig
    from disent.metrics._sap import _compute_sap

    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    z = np.load(a.work / "codes.npz")
    ztr, ftr, zte, fte = z["codes_train"], z["factors_train"], z["codes_test"], z["factors_test"]
    out: dict[str, float] = {}
    t = time.perf_counter()
    out["mig"] = float(_compute_mig(ztr.T, ftr.T)["mig.discrete_score"])
    out["sap"] = float(_compute_sap(ztr.T, ftr.T, zte.T, fte.T, continuous_factors=False)["sap.score"])
    n, m = a.dci_train, a.dci_test
    d = _compute_dci(ztr[:n].T, ftr[:n].T, zte[:m].T, fte[:m].T)
    out.update({"dci_d": float(d["dci.disentanglement"]), "dci_c": float(d["dci.completeness"]),
                "dci_i_test": float(d["dci.informativeness_test"])})
    out["seconds_arrays"] = time.perf_counter() - t

    bits = np.load(a.bits, mmap_mode="r")  # untwine's procedural dSprites cache: N x 64 x 8 packed rows

    class ProceduralDSprites(GroundTruthData):  # disent's custom ground-truth API
        factor_names = FACTOR_NAMES
        factor_sizes = FACTOR_SIZES
        img_shape = (64, 64, 1)

        def __len__(self):
            return len(bits)

        def _get_observation(self, idx):
            return np.unpackbits(bits[idx], axis=-1)[..., None] * np.uint8(255)

    def to_tensor(obs):
        return torch.from_numpy(np.ascontiguousarray(obs)).permute(2, 0, 1).float().div_(255)

    dataset = DisentDataset(ProceduralDSprites(), transform=to_tensor)
    model = plain_vae()
    model.load_state_dict(torch.load(a.work / "encoder.pt"), strict=False)
    encoder = model.encoder.eval().to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def representation(x):
        return encoder(x.float().contiguous(memory_format=torch.channels_last))[0]

    np.random.seed(0)
    torch.manual_seed(0)
    t = time.perf_counter()
    fv = metric_factor_vae(dataset, representation, batch_size=64, num_train=a.fv_train, num_eval=a.fv_eval,
                           num_variance_estimate=10000)
    out.update({"factor_vae_train": float(fv["factor_vae.train_accuracy"]),
                "factor_vae_eval": float(fv["factor_vae.eval_accuracy"]),
                "factor_vae_active": int(fv["factor_vae.num_active_dims"]),
                "seconds_factor_vae": time.perf_counter() - t})
    np.random.seed(1)
    out["mig_own_sampling"] = float(metric_mig(dataset, representation, num_train=10000)["mig.discrete_score"])
    import disent

    out["version"] = getattr(disent, "__version__", "0.8.0")
    print(json.dumps(out))



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("worker", metavar="SIDE")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--disvae-src", default=DISVAE_SRC)
    ap.add_argument("--bits", default=None, help="disent-metrics: untwine's procedural dSprites cache (.npy)")
    ap.add_argument("--fv-train", type=int, default=10000)
    ap.add_argument("--fv-eval", type=int, default=5000)
    ap.add_argument("--dci-train", type=int, default=10000)
    ap.add_argument("--dci-test", type=int, default=5000)
    a = ap.parse_args(argv)
    if a.worker == "disent-metrics":
        worker_disent_metrics(a)
    else:
        run_worker(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
