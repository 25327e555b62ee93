"""Command line: ``python -m icdmin {reproduce,bench,gradcheck,train}`` (argparse only).

Each sub-command imports its module lazily, so ``python -m icdmin --help`` is instant.
"""

from __future__ import annotations

import argparse
import os
import sys


def _reproduce(args) -> int:
    from .runner import check_args, reproduce

    only = None if args.only is None else [name.strip() for name in args.only.split(",")]
    if only is not None and not all(only):
        args.parser.error(f"argument --only: expected comma-separated experiment names, got {args.only!r}")
    try:  # every argument, --out last (created and test-written), before any compute
        checked = check_args(args.out, quick=args.quick, only=only, jobs=args.jobs, seed=args.seed,
                             strict=args.strict)
    except (TypeError, ValueError) as err:  # the message starts with the argument's name: "seed: expected ..."
        name, _, message = str(err).partition(": ")
        args.parser.error(f"argument --{name}: {message}")
    return reproduce(**checked)


def _bench(args) -> int:
    from . import bench

    if args.json is not None:
        _check_json_path(args.parser, args.json)
    return bench.main(quick=args.quick, json_path=args.json, peers=args.peers, strict=args.strict)


def _check_json_path(parser, path: str) -> None:
    """--json must name a file (not a folder) in an existing, writable folder."""
    folder = os.path.dirname(os.path.abspath(path)) if path else ""
    if not path or os.path.isdir(path):
        parser.error(f"argument --json: expected a file path, got {path!r}")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        parser.error(f"argument --json: folder {folder!r} does not exist or is not writable")


def _gradcheck(args) -> int:
    from .gradcheck import main as gradcheck_main

    return gradcheck_main(seed=args.seed)


def _train(args) -> int:
    from .train_cli import check_dirs, evaluate_saved, load_run
    from .train_cli import main as train_main

    problem = check_dirs(save=args.save, load=args.load)
    fixed = ("task", "kind", "seed", "data_seed", "epochs", "L", "model", "online", "eval_every")  # by the saved run
    extra = [f"--{d.replace('_', '-')}" for d in fixed if getattr(args, d) != args.parser.get_default(d)]
    if args.load is not None and extra:
        problem = f"argument --load: {', '.join(extra)} not allowed (fixed by the saved run; --n-fresh is allowed)"
    if problem:
        args.parser.error(problem)
    if args.load is not None:
        try:
            run = load_run(args.load)
        except (OSError, ValueError) as err:
            args.parser.error(f"argument --load: {err}")
        return evaluate_saved(args.load, run, n_fresh=args.n_fresh)
    try:
        return train_main(args.task, args.kind, seed=args.seed, epochs=args.epochs, L=args.L, online=args.online,
                          model=args.model, n_fresh=args.n_fresh, data_seed=args.data_seed,
                          eval_every=args.eval_every, save=args.save)
    except SystemError as err:  # Ctrl-C inside a Numba kernel: "returned a result with an exception set"
        cause = err
        while cause is not None and not isinstance(cause, KeyboardInterrupt):
            cause = cause.__cause__ or cause.__context__  # a chain of SystemErrors with the Ctrl-C at its root
        if cause is None:
            raise
        raise KeyboardInterrupt from None


def _at_least(low: int):
    """An argparse type: an integer >= ``low`` (argparse turns the ValueError into a one-line usage error)."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in "invalid integer value: 'x'"
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``icdmin`` argument parser (one sub-parser per command)."""
    parser = argparse.ArgumentParser(
        prog="icdmin",
        description="In-context denoising with one-layer transformers (Smart, Bietti & Sengupta, ICML 2025): "
        "reproduce the paper, benchmark, check gradients, train.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("reproduce", help="re-run the paper's experiments: tables, figures, results.json; "
                       "exits 1 when a claim fails")
    p.add_argument("--quick", action="store_true", help="fewer seeds and shorter runs (about 30 s)")
    p.add_argument("--out", default="icdmin-results", help="output directory (default: icdmin-results)")
    p.add_argument("--only", default=None, help="comma-separated experiments to run, e.g. fig3,fig5")
    p.add_argument("--jobs", type=_at_least(1), default=2, help="worker processes (default: 2)")
    p.add_argument("--seed", type=_at_least(0), default=0, help="master seed (default: 0)")
    p.add_argument("--no-strict", dest="strict", action="store_false", help="exit 0 even when a claim fails")
    p.set_defaults(func=_reproduce, parser=p)

    p = sub.add_parser("bench", help="speed, as ratios measured in the same run")
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--peers", action="store_true", help="also time the peer implementations that are installed")
    p.add_argument("--strict", action="store_true", help="exit 1 when a speed target is missed")
    p.set_defaults(func=_bench, parser=p)

    p = sub.add_parser("gradcheck", help="manual gradients vs numerical ones; exits 1 on failure")
    p.add_argument("--seed", type=_at_least(0), default=0, help="seed of the random problems (default: 0)")
    p.set_defaults(func=_gradcheck, parser=p)

    p = sub.add_parser("train", help="train on one paper case; exact train/test MSE per epoch beside the oracle's")
    p.add_argument("--task", choices=("subspace", "sphere", "gmm"), default="subspace")
    p.add_argument("--kind", choices=("linear", "softmax"), default=None,
                   help="attention kind (default: linear for subspace, softmax otherwise)")
    p.add_argument("--seed", type=_at_least(0), default=0, help="initialisation and batch-order seed (default: 0)")
    p.add_argument("--data-seed", type=_at_least(0), default=None, help="dataset seed (default: --seed)")
    p.add_argument("--epochs", type=_at_least(1), default=None,
                   help="default: 100 (subspace) or 200 (paper protocol)")
    p.add_argument("--L", type=_at_least(1), default=499, help="clean context tokens per prompt (default: 499)")
    p.add_argument("--model", choices=("full", "identity"), default="full")
    p.add_argument("--online", action="store_true", help="a fresh batch of prompts every step")
    p.add_argument("--n-fresh", type=_at_least(0), default=0, help="also evaluate on this many fresh prompts")
    p.add_argument("--eval-every", type=_at_least(1), default=1, help="epochs between evaluations (default: 1)")
    io = p.add_mutually_exclusive_group()
    io.add_argument("--save", default=None, metavar="DIR", help="write DIR/weights.npz and DIR/history.json")
    io.add_argument("--load", default=None, metavar="DIR",
                    help="evaluate the weights saved in DIR on that run's test prompts (no training)")
    p.set_defaults(func=_train, parser=p)
    return parser


def main(argv=None) -> int:
    """Entry point of ``python -m icdmin`` and the ``icdmin`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # reproduce handles its own Ctrl-C (partial results kept); the others just stop
        print(f"\nicdmin {args.command}: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # e.g. `python -m icdmin reproduce | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail
        return 1


if __name__ == "__main__":
    sys.exit(main())
