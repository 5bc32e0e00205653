"""The ``interceptor`` command line: one entry point, one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import sys

from interceptor.config import ConfigError, load_config
from interceptor.utils import setup_logging


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="YAML config (default: configs/demo.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.lr=3e-4")


def _synth(args: argparse.Namespace) -> int:
    from interceptor.synth import generate_corpus

    overrides = list(args.overrides)
    for key in ("seed", "videos", "size", "seconds"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"synth.{key}={value}")
    cfg = load_config(args.config, overrides)
    generate_corpus(args.out, cfg.synth)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from interceptor.demo import run_demo

    run_demo(args.out, load_config(args.config, args.overrides))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interceptor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write the synthetic forgery corpus in the official dataset layouts")
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--seed", type=int)
    synth.add_argument("--videos", type=int, help="videos per dataset")
    synth.add_argument("--size", type=int, help="frame height in pixels")
    synth.add_argument("--seconds", type=float, help="video length")
    _add_config_args(synth)
    synth.set_defaults(func=_synth)

    demo = sub.add_parser("demo", help="run the end-to-end demo on the synthetic corpus")
    demo.add_argument("--out", default="demo", help="output directory (default: demo)")
    _add_config_args(demo)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
