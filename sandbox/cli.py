"""The ``sandbox`` command: list, show, run, report, serve-llm.

Exit codes: 0 all runs succeeded; 1 some runs failed (the rest finished and were saved);
2 a usage or config error (nothing ran).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sandbox.config import ConfigError, parse_grids, parse_sets, schema_rows
from sandbox.executors import EXECUTORS
from sandbox.report import markdown_table
from sandbox.runner import UsageError

EXIT_OK, EXIT_FAILED_RUNS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox", description="Run alignment studies over seeds and grids."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="registered studies and environment ids")
    p_list.add_argument("--names", action="store_true", help="print only study names, one per line")

    p_show = sub.add_parser("show", help="a study's config schema and presets")
    p_show.add_argument("study")

    p_run = sub.add_parser("run", help="run a study over seeds and grids")
    p_run.add_argument("study", help="a registered study name, or module:attribute")
    p_run.add_argument("--scale", default="quick", help="preset: quick (default) or full")
    seeds = p_run.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, help="run seeds 0..N-1 (default: the preset's count)")
    seeds.add_argument("--seed-list", help="explicit comma-separated seeds, e.g. 0,3,7")
    p_run.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="fix a config value",
    )
    p_run.add_argument(
        "--grid",
        dest="grids",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a config key",
    )
    p_run.add_argument("--out", help="results folder (default runs/<study>/<timestamp>)")
    p_run.add_argument("--executor", choices=EXECUTORS, default="local")
    p_run.add_argument("--workers", type=int, help="parallel runs (default: CPU count)")
    p_run.add_argument("--address", help="Ray cluster address to join (with --executor ray)")
    p_run.add_argument(
        "--device",
        default="auto",
        help="torch device for learners: auto (default), cpu, cuda, cuda:N, mps",
    )
    p_run.add_argument(
        "--resume", action="store_true", help="continue a results folder: run only missing run ids"
    )
    p_run.add_argument("--quiet", action="store_true", help="no progress bars")

    p_report = sub.add_parser("report", help="rebuild report.md and figures of a results folder")
    p_report.add_argument("folder")

    p_serve = sub.add_parser(
        "serve-llm", help="an OpenAI-compatible server on 127.0.0.1 over offline backends"
    )
    try:
        from sandbox.llm.server import add_cli_arguments

        add_cli_arguments(p_serve)
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("sandbox.llm"):
            raise
        p_serve.set_defaults(_unavailable="the LLM layer (sandbox.llm) is not installed")
    return parser


def _cmd_list(args: argparse.Namespace) -> int:
    from sandbox.study import load, registered

    table = registered()
    if args.names:
        for name in sorted(table):
            print(name)
        return EXIT_OK
    print("Studies:")
    for name in sorted(table):
        try:
            study, _ = load(name)
            print(f"  {name:28s} {study.summary}")
            if study.paper:
                print(f"  {'':28s} paper: {study.paper}")
        except ConfigError as err:
            print(f"  {name:28s} (unavailable: {err})")
    import envs

    print("Environments:")
    for env_id in envs.registered_ids():
        print(f"  {env_id}")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from sandbox.study import load

    study, path = load(args.study)
    print(f"{study.name} (version {study.version}) — {study.summary}")
    if study.paper:
        print(f"paper: {study.paper}")
    print(f"import path: {path}\n")
    print("Config:")
    print(markdown_table(_rows_frame(schema_rows(study.Config))))
    for scale, preset in study.presets.items():
        print(f"\nPreset {scale!r}: {preset.description}")
        print(f"  seeds: {preset.seeds}")
        for k, v in preset.set.items():
            print(f"  set  {k} = {v!r}")
        for k, v in preset.grid.items():
            print(f"  grid {k} = {list(v)!r}")
    return EXIT_OK


def _rows_frame(rows):
    import pandas as pd

    return pd.DataFrame(rows)


def _parse_seed_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as err:
        raise UsageError(f"--seed-list expects comma-separated integers, got {text!r}") from err


def _cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from sandbox.executors import make_executor
    from sandbox.runner import plan, run_study
    from sandbox.study import load

    study, path = load(args.study)
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    seeds = (
        list(range(args.seeds))
        if args.seeds is not None
        else (_parse_seed_list(args.seed_list) if args.seed_list else None)
    )
    if args.device != "auto":
        from sandbox.device import pick

        try:
            pick(args.device)
        except ValueError as err:
            raise UsageError(str(err)) from err
    specs = plan(
        study,
        path,
        scale=args.scale,
        seeds=seeds,
        sets=parse_sets(args.sets),
        grids=parse_grids(args.grids),
        device=args.device,
    )
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / study.name / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    if args.address and args.executor != "ray":
        raise UsageError("--address is only valid with --executor ray")
    try:
        executor = make_executor(args.executor, args.workers, args.address)
    except (RuntimeError, ValueError) as err:
        raise UsageError(str(err)) from err
    summary = run_study(
        study,
        specs,
        out,
        executor=executor,
        resume=args.resume,
        scale=args.scale,
        quiet=args.quiet,
        command=["sandbox", *argv],
    )
    n = len(specs)
    print(
        f"{study.name}: {len(summary.ok)}/{n} runs ok ({len(summary.skipped)} resumed), {len(summary.failed)} failed"
    )
    for rid, err in summary.failed.items():
        last = err.strip().splitlines()[-1] if err.strip() else "unknown error"
        print(f"  failed {rid}: {last}", file=sys.stderr)
    if summary.report_error:
        print(f"report could not be built:\n{summary.report_error}", file=sys.stderr)
    print(f"results: {summary.folder / 'results.parquet'}")
    if summary.report:
        print(f"report:  {summary.report}")
    return EXIT_FAILED_RUNS if summary.failed or summary.report_error else EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from sandbox.report import write_report
    from sandbox.results import ResultsFolder
    from sandbox.study import load, load_path

    folder = Path(args.folder)
    try:
        manifest = ResultsFolder(folder).read_manifest()
    except FileNotFoundError as err:
        raise UsageError(str(err)) from err
    try:
        study, _ = load(manifest["study"])
    except ConfigError:
        study = load_path(manifest["study_path"])
    print(f"report: {write_report(study, folder)}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "show":
            return _cmd_show(args)
        if args.command == "run":
            return _cmd_run(args, argv)
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "serve-llm":
            if getattr(args, "_unavailable", None):
                raise UsageError(args._unavailable)
            from sandbox.llm.server import serve_from_args

            return serve_from_args(args)
    except (ConfigError, UsageError) as err:
        print(f"sandbox {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; finished runs are saved (rerun with --resume)", file=sys.stderr)
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
