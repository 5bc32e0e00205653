"""The ``interceptor`` command line: one entry point, one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from interceptor import DATASETS
from interceptor.config import ConfigError, load_config
from interceptor.utils import setup_logging

CONFIG_HELP = "a packaged config's name (demo, default) or a YAML path (default: demo)"


def _checked_config(path: str | None, overrides: list[str]):
    """The config, its ``specialist_modules`` imported and the specialists it names checked (the registry's
    ``check_specialists``; the models, and torch with them, imported here, not at the command line's start-up)."""
    from interceptor.models.registry import check_specialists

    return load_config(path, overrides, check=check_specialists)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help=CONFIG_HELP)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.lr=3e-4")


def _synth(args: argparse.Namespace) -> int:
    from interceptor.synth import generate_corpus

    overrides = list(args.overrides)
    for key in ("seed", "videos", "size", "seconds"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"synth.{key}={value}")
    cfg = _checked_config(args.config, overrides)
    generate_corpus(args.out, cfg.synth)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from interceptor.demo import run_demo

    try:
        run_demo(args.out, _checked_config(args.config, args.overrides), args.config, args.overrides, args.dfdc_sample)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _export(args: argparse.Namespace) -> int:
    from interceptor.export import collect_models
    from interceptor.models import export_onnx, load_model
    from interceptor.models.export import ExportError
    from interceptor.models.registry import specialist_names

    _checked_config(args.config, args.overrides)  # imports the config's specialist_modules
    collected = collect_models(args.runs, args.out, specialist_names())
    for spec, info in collected.items():
        if args.onnx:
            try:
                model = load_model(info["model"])
            except ExportError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            export_onnx(model, Path(info["model"]) / "model.onnx")
        extras = [name for name, present in (("student", info["student"]), ("onnx", args.onnx)) if present]
        print(f"{spec}: {info['model']}" + "".join(f" (+ {name})" for name in extras))
    return 0 if collected else 1


def _specialists(args: argparse.Namespace) -> int:
    from interceptor.models.registry import specialist_names

    _checked_config(args.config, args.overrides)  # imports the config's specialist_modules
    print("\n".join(specialist_names()))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from interceptor.evaluation import run_eval
    from interceptor.models.export import ExportError

    cfg = _checked_config(args.config, args.overrides)
    try:
        run_eval(args.models, args.shards, args.out, cfg, args.splits, args.device)
    except (FileNotFoundError, ExportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report: {args.out / 'report.md'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import json

    from interceptor.predict import ModelsError, Predictor, predict_videos, resolve_device, summary_line

    cfg = _checked_config(args.config, args.overrides)
    try:
        predictor = Predictor.load(args.models or cfg.predict.models_dir, cfg, resolve_device(args.device),
                                   students=args.students)
    except (ModelsError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = False
    for result in predict_videos(args.videos, predictor):
        failed |= "error" in result
        line = json.dumps(result) if args.json else summary_line(result)
        print(line, file=sys.stderr if "error" in result and not args.json else sys.stdout, flush=True)
    return 1 if failed else 0


def _add_predict_parser(sub) -> None:
    predict = sub.add_parser("predict", help="the agent's verdict on video files (see docs/predict.md)")
    predict.add_argument("videos", nargs="+", metavar="VIDEO")
    predict.add_argument("--models", help="models directory: <spec>_model/ exports and agent.json "
                                          "(default: predict.models_dir, demo/models)")
    predict.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when available, else cpu")
    predict.add_argument("--json", action="store_true", help="one JSON object per video and line")
    predict.add_argument("--students", action="store_true", help="use the distilled students where present")
    predict.add_argument("--config", default=None, help=CONFIG_HELP)
    predict.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="a dotted config override, e.g. --set predict.detector.min_face=0.1 (repeatable)")
    predict.set_defaults(func=_predict)


def _list_of(kind, choices: tuple = ()):
    """An argparse type: a comma-separated list of ``kind``, each among ``choices`` if given."""
    def parse(text: str) -> list:
        try:
            items = [kind(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}")
        unknown = [str(item) for item in items if choices and item not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)} (choose from {', '.join(choices)})")
        return items
    return parse


def _shards_build(args: argparse.Namespace) -> int:
    from interceptor.shards.build import BuildError, Task, build_shards, merge_all

    if args.merge:
        merged, incomplete = merge_all(args.out, args.num_tasks)
        for directory in incomplete:
            print(f"{directory}: not all {args.num_tasks} partial manifests are there yet", file=sys.stderr)
        print(f"merged {len(merged)} shard sets")
        return 1 if incomplete else 0
    if args.root is None:
        print("error: --root is required to build", file=sys.stderr)
        return 2
    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f"shards.workers={args.workers}")
    if args.compression is not None:
        overrides.append(f"shards.ffpp_compression={args.compression}")
    cfg = _checked_config(args.config, overrides)
    try:
        manifests = build_shards(args.dataset, args.root, args.out, cfg.shards, splits=args.split, chunks=args.chunk,
                                 task=Task(args.task_index, args.num_tasks))
    except ConfigError:
        raise
    except (ValueError, BuildError) as err:  # a broken layout, an unreadable file, a bad task index: all named
        print(f"error: {err}", file=sys.stderr)
        return 2
    for manifest in manifests:
        print(manifest)
    return 0


def _shards_inspect(args: argparse.Namespace) -> int:
    from interceptor.shards.inspection import inspect_shards

    text, problems = inspect_shards(args.out, checksums=not args.no_checksums)
    if text:
        print(text)
    for problem in problems if not text else []:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _add_shards_parser(sub) -> None:
    shards = sub.add_parser("shards", help="build and inspect WebDataset shards (see shards/FORMAT.md)")
    actions = shards.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="turn a raw dataset layout into WebDataset shards")
    build.add_argument("dataset", choices=DATASETS,
                       help="dfd: FF++'s DeepFakeDetection (--root: the FF++ root); dfdc_test: the DFDC public test "
                            "set (--root: the folder holding its labels.csv)")
    build.add_argument("--root", help="the dataset's root directory, in its official layout")
    build.add_argument("--out", required=True, help="output: OUT/{train,val,test}/, or OUT/chunk-KK/... for DFDC")
    build.add_argument("--split", type=_list_of(str, ("train", "val", "test")),
                       help="comma-separated splits to build (default: all)")
    build.add_argument("--chunk", type=_list_of(int),
                       help="DFDC: comma-separated chunk numbers K of dfdc_train_part_K (default: all)")
    build.add_argument("--workers", type=int, help="processes (default: shards.workers)")
    build.add_argument("--compression", choices=["raw", "c23", "c40"], help="FF++ quality (default: c23)")
    build.add_argument("--task-index", type=int, default=0, help="multi-node: this task's index")
    build.add_argument("--num-tasks", type=int, default=1, help="multi-node: number of tasks")
    build.add_argument("--merge", action="store_true",
                       help="only merge the partial manifests of --num-tasks tasks under --out")
    _add_config_args(build)
    build.set_defaults(func=_shards_build)
    inspect = actions.add_parser("inspect", help="summarise and validate built shards")
    inspect.add_argument("out", help="a shard set, or any directory above shard sets")
    inspect.add_argument("--no-checksums", action="store_true", help="check sizes only; read no shard")
    inspect.set_defaults(func=_shards_inspect)


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
    demo.add_argument("--dfdc-sample", type=Path, default=os.environ.get("INTERCEPTOR_DFDC_SAMPLE"),
                      help="a folder holding dfdc_train_part_0/*.mp4: real DFDC videos to predict on too "
                           "(default: $INTERCEPTOR_DFDC_SAMPLE; none: the synthetic videos only)")
    _add_config_args(demo)
    demo.set_defaults(func=_demo)

    _add_shards_parser(sub)

    train = sub.add_parser("train", add_help=False,
                           help="train specialists (data parallel: torchrun -m interceptor.train.launch)")
    train.set_defaults(func=None)

    export = sub.add_parser("export", help="collect a curriculum's trained specialists into a models directory")
    export.add_argument("--runs", required=True, type=Path, help="the training run root (RUN of interceptor train)")
    export.add_argument("--out", required=True, type=Path, help="the models directory to write")
    export.add_argument("--onnx", action="store_true", help="also write each model as <spec>_model/model.onnx "
                        "(needs the onnx and onnxscript packages)")
    _add_config_args(export)  # the config's specialist_modules: specialists defined outside the package
    export.set_defaults(func=_export)

    specialists = sub.add_parser("specialists", help="the registered specialists, one per line (the built-in six, "
                                 "then the config's specialist_modules' own)")
    _add_config_args(specialists)
    specialists.set_defaults(func=_specialists)

    evaluate = sub.add_parser("eval", help="video-level reports of the specialists and the fitted agent")
    evaluate.add_argument("--models", required=True, type=Path, help="models directory (interceptor export)")
    evaluate.add_argument("--shards", required=True, type=Path, help="root holding ffpp/, celebdf/, dfdc/")
    evaluate.add_argument("--splits", type=_list_of(str), help="shard sets to report on (default: eval.splits)")
    evaluate.add_argument("--out", required=True, type=Path, help="report directory")
    evaluate.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    _add_config_args(evaluate)
    evaluate.set_defaults(func=_eval)
    _add_predict_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # the trainer has its own parser (interceptor/train/launch.py)
        from interceptor.train.launch import main as train_main

        return train_main(argv[1:])
    setup_logging()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # KEY=VALUE overrides may follow options, which argparse alone does not accept
        if not hasattr(args, "overrides") or any(item.startswith("-") or "=" not in item for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
