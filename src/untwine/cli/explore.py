"""``untwine explore RUN_DIR|PRETRAINED_NAME``: serve the latent explorer on 127.0.0.1 and open it."""

from __future__ import annotations

import argparse
import ipaddress
import webbrowser
from pathlib import Path

from . import UserError


def resolve(target: str) -> Path:
    """A run folder, or the folder of the shipped pretrained model of that name."""
    from .. import pretrained

    p = Path(target).expanduser()
    if p.is_dir():
        return p
    if target in pretrained.names() or target in pretrained.RENAMED:
        return pretrained.path(target)  # a renamed model: the error says what it became
    known = ", ".join(pretrained.names()) or "none shipped"
    raise UserError(f"{target!r} is neither a run folder nor a pretrained model (pretrained: {known})")


def run(args: argparse.Namespace) -> int:
    try:
        from ..explore.app import Server, bind, open_when_started
    except ImportError as e:
        raise UserError(str(e)) from None
    import torch

    from .. import pretrained
    from ..data import load
    from ..explore import Explorer
    from ..explore.core import MIG_SAMPLES
    from ..train import load_run

    run_dir = resolve(args.target)
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    try:
        sock = bind(args.port, args.host)  # first, so a busy port fails before the slow loading
    except OSError as e:
        raise UserError(str(e)) from None
    if args.threads:
        torch.set_num_threads(args.threads)
    r = load_run(run_dir)
    cfg = r.config
    data = load(cfg.dataset, cfg.source, cfg.data_root)
    samples = MIG_SAMPLES if args.samples is None else args.samples
    print(f"encoding {samples} {cfg.dataset} images for the latent x factor mutual information...", flush=True)
    server = Server(Explorer(r, data, samples=samples, seed=args.seed), sock=sock, host=args.host)
    print(f"untwine explore: serving {r.dir} on {server.url} (Ctrl-C to stop)", flush=True)
    if caveat := pretrained.caveat(r.dir):
        print(f"note: {caveat}", flush=True)
    if not ipaddress.ip_address(sock.getsockname()[0]).is_loopback:
        print(f"warning: --host {args.host}: anyone who can reach {server.url} can use the explorer "
              "(there is no login); it answers requests addressed to that name only", flush=True)
    if not args.no_browser:
        open_when_started(server, webbrowser.open)
    server.run()
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explore",
        help="interactive latent explorer in the browser (needs pip install 'untwine[explore]')",
        description="Serve a page on 127.0.0.1 to pick inputs by their factors, move each latent "
        "and watch the decoded image, see the latent x factor mutual information and traversals.",
    )
    p.add_argument("target", metavar="RUN_DIR|PRETRAINED_NAME", help="run folder or `untwine pretrained list` name")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on, and the only host name (besides 127.0.0.1 and localhost) "
                   "it answers (default 127.0.0.1: this machine only)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the model (default 1: steadiest on a busy CPU; 0: torch's default)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--samples", type=int, default=None,
                   help="images encoded for the MI matrix (default: MIG's sample size)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    p.set_defaults(func=run)
