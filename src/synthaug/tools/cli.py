"""The tools beside the DVC pipeline: `synthaug check`, `sweep`, `hpo`, `grid`, `generate`, `local` and
`download`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

from synthaug.core.errors import MissingInput, ModelLoadError, SweepError
from synthaug.core.runner import run_stage


def require_pipeline_inputs(data: Path, splits: Path) -> None:
    """The fetched train split and the imbalance splits the tools beside the pipeline read, or a one-line error."""
    for path, stage in ((data / "train.npz", "fetch"), (splits, "imbalance")):
        if not path.is_file():
            raise MissingInput(f"{path}: missing (run `dvc repro {stage}` first)")


def sweep_main(argv: list[str]) -> str:
    from synthaug.core.io import write_json, write_text
    from synthaug.core.variants import added_generator
    from synthaug.report.sweep_runs import (
        exp_show,
        generator_amounts,
        provenance_file,
        rows_to_csv,
        sweep_file_name,
        sweep_points,
        sweep_provenance,
        sweep_rows,
    )
    from synthaug.report.sweeps import sweep_markdown

    parser = argparse.ArgumentParser(
        prog="synthaug sweep",
        description="Collect a `dvc exp run --queue -S` sweep into metrics/sweeps/<key>.csv "
        "(the report draws it as a heatmap, and a variant's score against the generated images per class it added).",
    )
    parser.add_argument("param", help="the swept params.yaml key, e.g. train.augment_p")
    parser.add_argument(
        "--metric",
        default="macro_f1",
        help="test metric (metrics/eval/<entry>/seed<k>.json key, e.g. recall_few) to collect (default macro_f1); "
        "another metric than macro_f1 gets its own table, <key>.<metric>.csv",
    )
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep only experiments with this params value (YAML), e.g. experiment.preset=demo",
    )
    parser.add_argument("--out", type=Path, default=Path("metrics/sweeps"), help="folder for the table")
    parser.add_argument("--repo", type=Path, default=Path("."), help="DVC repository")
    args = parser.parse_args(argv)
    where = {}
    for condition in args.where:
        key, sep, value = condition.partition("=")
        if not sep:
            raise SystemExit(f"synthaug sweep: error: --where {condition!r}: expected KEY=VALUE")
        where[key] = yaml.safe_load(value)
    shown = exp_show(args.repo)
    points = sweep_points(shown, args.param, args.metric, where)
    provenance = sweep_provenance(shown, args.param, where, args.repo, {point.experiment for point in points})
    generators = {generator for point in points if (generator := added_generator(point.variant))}
    amounts = generator_amounts(args.repo, provenance["experiments"], generators)
    rows = sweep_rows(points, args.param, args.metric, amounts)
    path = args.out / sweep_file_name(args.param, args.metric)
    write_json(provenance_file(path), provenance)
    write_text(path, rows_to_csv(rows))
    print(sweep_markdown(rows))
    runs = sum(row["runs"] for row in rows)
    return f"{len(rows)} cells from {runs} tested entries written to {path}"


def hpo_main(argv: list[str]) -> str:
    from synthaug.core.param_rules import load_section
    from synthaug.core.params import HpoParams, TrainParams
    from synthaug.core.tracking import run_name, stage_run
    from synthaug.data.imbalance import load_variant_sets
    from synthaug.tools.hpo import (
        best_overrides,
        finished_trials,
        run_search,
        storage_url,
        write_results,
    )

    parser = argparse.ArgumentParser(
        prog="synthaug hpo",
        description="Optuna search over the train keys in params.yaml "
        "`hpo.space`, for hpo.classifier and hpo.variant; rerun to continue the study.",
    )
    parser.add_argument("--data", type=Path, default=Path("data/cifar10"), help="fetch output")
    parser.add_argument("--splits", type=Path, default=Path("data/splits.npz"), help="imbalance output")
    parser.add_argument(
        "--storage",
        type=Path,
        default=Path("models/hpo/optuna.db"),
        help="sqlite file of the studies (hpo.storage null)",
    )
    parser.add_argument("--worker", type=int, default=0, help="this worker's number, when several share a study")
    parser.add_argument("--out", type=Path, default=Path("metrics/hpo"), help="folder for the study's results")
    args = parser.parse_args(argv)
    params = load_section("hpo", HpoParams)
    base = load_section("train", TrainParams)
    require_pipeline_inputs(args.data, args.splits)
    train_set, val_set = load_variant_sets(args.data, args.splits, params.variant, params.seed)
    out = args.out / params.study
    with stage_run(
        run_name("hpo", params.study),
        {"hpo": params.model_dump(), "train": base.model_dump()},
        {"classifier": params.classifier, "variant": params.variant},
    ) as tracker:
        url = storage_url(params, args.storage)
        result = run_search(params, base, train_set, val_set, url, tracker, args.worker)
        write_results(result.study, out)
        best = result.best
        assert best.value is not None  # the best of the finished trials, each with its value
        tracker.log_metrics({"best_val_macro_f1": best.value, "finished_trials": finished_trials(result.study)})
        tracker.log_artifact(out / "best_params.yaml")
    print(f"apply the best: dvc exp run {' '.join(best_overrides(best))}")
    return (
        f"study {params.study}: {result.new_trials} new trials, {finished_trials(result.study)} finished; "
        f"best val macro-F1 {best.value:.4f} (trial {best.number}); results in {out}"
    )


def dvc_stage_graph(repo: Path) -> tuple[dict[str, list[str] | None], dict[str, set[str]]]:
    """Each stage's params.yaml keys (None: the whole file) and its upstream stages, upstream stages first."""
    import networkx as nx
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        graph = dvc.index.graph  # edges point from a stage to the stages it depends on
        params_by_stage: dict[str, list[str] | None] = {}
        upstream_by_stage: dict[str, set[str]] = {}
        for stage in reversed(list(nx.topological_sort(graph))):
            keys: list[str] | None = []
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency) and keys is not None:
                    keys = None if not dep.params else [*keys, *dep.params]
            params_by_stage[stage.addressing] = keys
            upstream_by_stage[stage.addressing] = {up.addressing for up in nx.descendants(graph, stage)}
    return params_by_stage, upstream_by_stage


def grid_main(argv: list[str]) -> str:
    from synthaug.tools.compose import compose_params
    from synthaug.tools.grid import (
        differing_keys,
        expand_grid,
        fixed_overrides,
        read_grid,
        set_param_arguments,
        shared_stages,
    )

    parser = argparse.ArgumentParser(
        prog="synthaug grid",
        description="Expand a grid file (one `dvc exp run -S` value per line, Hydra sweep syntax) into its points, "
        "as `dvc exp run --queue` would. Without an option, list the points and the stages they share.",
    )
    parser.add_argument("grid", type=Path, help="the grid file")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--count", action="store_true", help="print the number of points")
    action.add_argument(
        "--point", type=int, metavar="K", help="print the `dvc exp run` arguments of point K (0-based), one per line"
    )
    action.add_argument(
        "--shared",
        action="store_true",
        help="print the `dvc exp run` arguments that run the stages every point shares, one per line "
        "(nothing when no stage is shared)",
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="DVC repository")
    args = parser.parse_args(argv)
    points = expand_grid(read_grid(args.grid))
    if args.count:
        print(len(points))
        return f"{len(points)} points"
    if args.point is not None:
        if not 0 <= args.point < len(points):
            raise SweepError(f"{args.grid}: point {args.point} is outside 0..{len(points) - 1}")
        print("\n".join(set_param_arguments(points[args.point])))
        return f"point {args.point} of {len(points)}"
    conf = args.repo / "conf"
    changed = differing_keys([compose_params(conf, point) for point in points])
    params_by_stage, upstream_by_stage = dvc_stage_graph(args.repo)
    shared = shared_stages(params_by_stage, upstream_by_stage, changed)
    if args.shared:
        if shared:
            print("\n".join([*set_param_arguments(fixed_overrides(points)), *shared]))
        return f"{len(shared)} shared stages"
    for index, point in enumerate(points):
        print(f"{index}: {' '.join(point)}")
    print(f"keys that differ: {', '.join(sorted(changed)) or 'none'}")
    print(f"stages every point shares: {', '.join(shared) or 'none'}")
    return f"{len(points)} points, {len(shared)} shared stages"


def generate_main(argv: list[str]) -> str:
    from tqdm import tqdm

    from synthaug.core.generator_params import SynthesizeParams
    from synthaug.core.generator_runs import RUN_FOLDER, SHARED_RUN, generator_run_seed, run_folders
    from synthaug.core.param_rules import load_section
    from synthaug.core.plots import image_grid, save_png
    from synthaug.core.variants import GENERATORS
    from synthaug.tools.generate import generate_items, load_generator, plan_class

    parser = argparse.ArgumentParser(
        prog="synthaug generate",
        description="Images of one class from a pipeline generator run (models/generators/<generator>/<run>), seeded "
        "per image as the synthesize stage seeds them: image k is the class's k-th image in that run's shards.",
    )
    parser.add_argument("--generator", required=True, choices=GENERATORS, help="an experiment.generators entry")
    parser.add_argument("--class", dest="class_name", required=True, help="class name, e.g. cat")
    parser.add_argument("--count", type=int, default=16, help="number of images (default 16)")
    parser.add_argument(
        "--run", default=None, help="generator run, seed<k> or shared (default: the first the generator has)"
    )
    parser.add_argument("--seed", type=int, default=None, help="default: the run's synthesize seed, as in its shards")
    parser.add_argument("--out", type=Path, required=True, help="a folder (one PNG per image) or FILE.png (one grid)")
    parser.add_argument("--model", type=Path, default=None, help="default: models/generators/<generator>/<run>")
    parser.add_argument("--data", type=Path, default=Path("data/cifar10"), help="fetch output")
    parser.add_argument("--splits", type=Path, default=Path("data/splits.npz"), help="imbalance output")
    args = parser.parse_args(argv)
    if args.count < 1:
        raise SweepError(f"--count {args.count}: give at least 1")
    require_pipeline_inputs(args.data, args.splits)
    params = load_section("synthesize", SynthesizeParams)
    runs = run_folders(Path("models/generators") / args.generator)
    if args.run is not None and not RUN_FOLDER.match(args.run):
        raise SweepError(f"--run {args.run!r}: expected seed<k> or shared")
    run = args.run or (args.model.name if args.model else next(iter(runs), SHARED_RUN))
    run_seed = generator_run_seed(params.seed, run) if RUN_FOLDER.match(run) else params.seed
    seed = run_seed if args.seed is None else args.seed
    model = args.model or Path("models/generators") / args.generator / run
    batch_size = getattr(params, args.generator).batch_size
    # An unknown class or a missing export fails here, before the progress bar starts.
    train, items = plan_class(args.generator, params, args.data, args.splits, args.class_name, args.count, seed)
    backend = load_generator(args.generator, params, model, train)
    with tqdm(total=args.count, desc=f"{args.generator} {args.class_name}", unit="image") as bar:
        images = generate_items(backend, items, batch_size, bar.update)
    if args.out.suffix.lower() == ".png":
        columns = int(np.ceil(np.sqrt(len(images))))
        save_png(image_grid([images[i : i + columns] for i in range(0, len(images), columns)]), args.out)
        return f"{len(images)} images of {args.class_name} as one grid in {args.out}"
    args.out.mkdir(parents=True, exist_ok=True)
    for image, item in zip(images, items):
        save_png(image, args.out / f"{item.class_name}_{item.index:05d}_seed{item.seed}.png")
    return f"{len(images)} images of {args.class_name} in {args.out} (seed {seed})"


def local_main(argv: list[str]) -> str:
    from synthaug.tools.compose import write_local_settings

    parser = argparse.ArgumentParser(
        prog="synthaug local",
        description="Set params for this clone only: conf/local/settings.yaml (git-ignored) is composed after the "
        "preset, so every later `dvc exp run` keeps them (`-S` still overrides). Delete the file to drop them.",
    )
    parser.add_argument("assignments", nargs="+", metavar="KEY=VALUE", help="e.g. fetch.archive=/data/cifar10.tar.gz")
    parser.add_argument("--conf", type=Path, default=Path("conf"), help="the config folder (default conf)")
    args = parser.parse_args(argv)
    path, settings = write_local_settings(args.conf, args.assignments)
    return f"{path}: {yaml.safe_dump(settings, default_flow_style=True, width=1000).strip()}"


def download_main(argv: list[str]) -> str:
    from synthaug.core.generator_params import SynthesizeParams
    from synthaug.core.param_rules import parse_section
    from synthaug.generators.weights import local_commit, snapshot, unreachable_errors
    from synthaug.tools.compose import compose_assignments, write_local_settings

    parser = argparse.ArgumentParser(
        prog="synthaug download",
        description="Fetch the SDXL-Turbo models the params name (synthesize.sdxl_turbo: model, controlnet, vae) "
        "from the Hugging Face Hub into DIR/<role>: configs, tokenizers and safetensors weights only, fp16 where "
        "the repository has them. Then point this clone at them (conf/local/settings.yaml), pinned to the "
        "commits fetched.",
    )
    parser.add_argument("dir", type=Path, help="folder to fill (DIR/model, DIR/controlnet, DIR/vae)")
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE", help="overrides, as dvc exp run -S takes them")
    parser.add_argument("--conf", type=Path, default=Path("conf"), help="the config folder (default conf)")
    parser.add_argument("--endpoint", default=None, help="Hub address (default: HF_ENDPOINT, else the Hub)")
    args = parser.parse_args(argv)
    composed = compose_assignments(args.conf, args.assignments)[0]["synthesize"]
    params = parse_section("synthesize", composed, SynthesizeParams).sdxl_turbo
    settings = []
    for role in ("model", "controlnet", "vae"):
        source, revision = getattr(params, role), getattr(params, f"{role}_revision")
        if source is None or Path(source).expanduser().is_dir():
            continue
        try:
            folder = snapshot(source, revision, local_dir=args.dir.resolve() / role, endpoint=args.endpoint)
        except unreachable_errors() as exc:
            raise ModelLoadError(f"cannot download {source}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
        commit = local_commit(folder)
        settings += [f"synthesize.sdxl_turbo.{role}='{folder}'", f"synthesize.sdxl_turbo.{role}_revision='{commit}'"]
        print(f"{source} -> {folder} (commit {commit})")
    if not settings:
        return "nothing to download: every configured model is a local folder"
    path, _ = write_local_settings(args.conf, settings)
    return f"{len(settings) // 2} model(s) in {args.dir}; {path} now points the pipeline at them"


def check_main(argv: list[str]) -> str:
    from synthaug.core.errors import ParamsError
    from synthaug.core.param_rules import load_params, params_problems
    from synthaug.tools.compose import compose_assignments

    parser = argparse.ArgumentParser(
        prog="synthaug check",
        description="Every params rule, the ones between sections included, on what `dvc exp run -S KEY=VALUE ...` "
        "would compose from conf/ (or on --params FILE): one line per problem, before any stage starts.",
    )
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE", help="overrides, as dvc exp run -S takes them")
    parser.add_argument("--conf", type=Path, default=Path("conf"), help="the config folder (default conf)")
    parser.add_argument("--params", type=Path, default=None, help="check this params file instead of composing")
    args = parser.parse_args(argv)
    if args.params is not None and args.assignments:
        raise ParamsError("give KEY=VALUE overrides or --params, not both")
    data = load_params(args.params) if args.params else compose_assignments(args.conf, args.assignments)[0]
    problems = params_problems(data)
    for problem in problems:
        print(f"synthaug check: {problem}", file=sys.stderr)
    if problems:
        raise ParamsError(f"{len(problems)} problem(s) in the params; nothing was run")
    preset = data["experiment"]["preset"]
    return f"the params of preset {preset!r} keep every rule ({len(data)} sections)"


COMMANDS = {
    "check": check_main,
    "sweep": sweep_main,
    "hpo": hpo_main,
    "grid": grid_main,
    "generate": generate_main,
    "local": local_main,
    "download": download_main,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(f"usage: synthaug {{{','.join(COMMANDS)}}} [options]   (synthaug <command> --help)", file=sys.stderr)
        sys.exit(2)
    command, argv = sys.argv[1], sys.argv[2:]
    # grid's output feeds the cluster scripts: its one-line summary goes to stderr
    summary_stream = sys.stderr if command == "grid" else sys.stdout
    run_stage(f"synthaug {command}", lambda: COMMANDS[command](argv), summary_stream)


if __name__ == "__main__":
    main()
