"""docs/results/paper_mnist_cpu: the VAE and beta-VAE models on MNIST."""

from __future__ import annotations

from .core import TABLES, Table, csv_rows, key, num

def mnist_label(r: dict) -> str:
    return "VAE" if r["model"] == "vae" else f"beta-VAE, beta = {r['beta']}"


TABLES["paper_mnist_cpu/models"] = Table(
    sources=["paper_mnist_cpu/results.csv"],
    rows=csv_rows("paper_mnist_cpu/results.csv", order=lambda r: (r["model"] != "vae", -float(r["beta"] or 0))),
    columns=[("model", mnist_label), ("rec (nats/image)", key("val_rec", lambda v: num(v, 1))),
             ("KL (nats/image)", key("val_kl", lambda v: num(v, 1))), ("MIG (digit)", key("mig", num)),
             ("Gaussian TC of mean codes", key("gaussian_tc", lambda v: num(v, 2))),
             ("DCI informativeness", key("dci_informativeness", num))],
)
