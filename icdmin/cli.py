"""Command line: ``python -m icdmin {reproduce,bench,gradcheck,train}`` (argparse only).

Each sub-command imports its module lazily, so ``python -m icdmin --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys


def _reproduce(args) -> int:
    from .experiments import reproduce

    only = [name.strip() for name in args.only.split(",") if name.strip()] if args.only else None
    return reproduce(out=args.out, quick=args.quick, only=only, jobs=args.jobs, seed=args.seed)


def _bench(args) -> int:
    from .bench import run

    run(quick=args.quick, json_path=args.json)
    return 0


def _gradcheck(args) -> int:
    from .gradcheck import main as gradcheck_main

    return gradcheck_main(seed=args.seed)


def _train(args) -> int:
    from .train_cli import main as train_main

    return train_main(args.task, args.kind, seed=args.seed, epochs=args.epochs, L=args.L, online=args.online,
                      model=args.model, n_fresh=args.n_fresh, data_seed=args.data_seed, eval_every=args.eval_every)


def build_parser() -> argparse.ArgumentParser:
    """The ``icdmin`` argument parser (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog="icdmin",
        description="In-context denoising with one-layer transformers (Smart, Bietti & Sengupta, ICML 2025): "
        "reproduce the paper, benchmark, check gradients, train.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reproduce", help="re-run the paper's experiments: tables, figures, results.json")
    p.add_argument("--quick", action="store_true", help="fewer seeds and shorter runs (about 30 s)")
    p.add_argument("--out", default="icdmin-results", help="output directory (default: icdmin-results)")
    p.add_argument("--only", default=None, help="comma-separated experiments to run, e.g. fig3,fig5")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("bench", help="speed, as ratios measured in the same run")
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.set_defaults(func=_bench)

    p = sub.add_parser("gradcheck", help="manual gradients vs numerical ones; exits 1 on failure")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_gradcheck)

    p = sub.add_parser("train", help="train on one paper case; exact train/test MSE per epoch beside the oracle's")
    p.add_argument("--task", choices=("subspace", "sphere", "gmm"), default="subspace")
    p.add_argument("--kind", choices=("linear", "softmax"), default=None,
                   help="attention kind (default: linear for subspace, softmax otherwise)")
    p.add_argument("--seed", type=int, default=0, help="initialisation and batch-order seed (default: 0)")
    p.add_argument("--data-seed", type=int, default=None, help="dataset seed (default: --seed)")
    p.add_argument("--epochs", type=int, default=None, help="default: 100 (subspace) or 200 (paper protocol)")
    p.add_argument("--L", type=int, default=499, help="clean context tokens per prompt (default: 499)")
    p.add_argument("--model", choices=("full", "identity"), default="full")
    p.add_argument("--online", action="store_true", help="a fresh batch of prompts every step")
    p.add_argument("--n-fresh", type=int, default=0, help="also evaluate on this many fresh prompts")
    p.add_argument("--eval-every", type=int, default=1, help="epochs between evaluations (default: 1)")
    p.set_defaults(func=_train)
    return parser


def main(argv=None) -> int:
    """Entry point of ``python -m icdmin`` and the ``icdmin`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
