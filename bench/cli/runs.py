"""`bench evaluate`, `bench runs ...` and `bench results push`: run sweeps, read them, resume them, publish them."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, Optional

import typer
from rich.table import Table

from bench.cli.common import SERVER_HELP, client_for, err, open_registry, out, print_json, require_client, user_errors
from bench.platform.units import plural


runs_app = typer.Typer(no_args_is_help=True, help="Evaluation runs: list, inspect, resume, mark failed.")
results_app = typer.Typer(no_args_is_help=True, help="Publish evaluation runs to a server.")


@contextlib.contextmanager
def _run_progress(enabled: bool) -> Iterator[Any]:
    """Progress bars on stderr, one per run; yields the harness's progress callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def callback(run_id: str, phase: str, step: int, total: int) -> None:
            if run_id not in tasks:
                tasks[run_id] = progress.add_task(run_id, total=total)
            progress.update(tasks[run_id], description=f"{run_id} {phase}", completed=step, total=total)

        yield callback


def _report_sweep(store, run_ids: list[str], as_json: bool) -> None:
    from bench.evaluation.store import run_json, summarize

    runs = [store.get(run_id) for run_id in run_ids]
    summary = summarize(runs)
    if as_json:
        print_json({"runs": [run_json(run) for run in runs], "summary": summary})
    else:
        table = Table("run", "seed", "status", "offline return", "offline score", "offline success",
                      "online return", "online score", "online success", box=None)
        for run in runs:
            item = run_json(run)
            cells = []
            for phase in ("offline", "online"):
                values = item[phase] or {}
                cells += [_number(values.get("return")), _number(values.get("normalized_score")),
                          _number(values.get("success_rate"))]
            table.add_row(run.id, str(run.seed), run.status, *cells)
        out.print(table)
        evaluated = [item[phase] for item in map(run_json, runs) for phase in ("offline", "online") if item[phase]]
        if evaluated and all(values.get("success_rate") is None for values in evaluated):
            out.print(NO_SUCCESS, highlight=False)
        for phase in ("offline", "online"):
            if summary.get(phase):
                parts = [f"{metric} {_interval(summary[phase][metric])}" for metric in summary[phase]
                         if summary[phase][metric]]
                out.print(f"{phase}: " + "; ".join(parts), highlight=False)
    for run in runs:
        if run.error:
            err.print(f"{run.id}: {run.error}", markup=False, highlight=False)
    statuses = {run.status for run in runs}
    if "interrupted" in statuses:
        err.print(f"interrupted; continue with: bench runs resume {' '.join(r.id for r in runs if r.status != 'completed')}",
                  markup=False)
        raise typer.Exit(130)
    if statuses != {"completed"}:
        raise typer.Exit(1)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.3g}"


NO_SUCCESS = ("success -: the environment reports no success (its info has neither 'success' nor 'is_success'), "
              "so there is no rate to show")


def _interval(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "-"
    if stat["ci95"] is None:
        return f"{stat['mean']:.3g} (n=1)"
    low, high = stat["ci95"]
    return f"{stat['mean']:.3g} [{low:.3g}, {high:.3g}] (n={stat['n']})"


DEVICE_HELP = ("the torch device: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N; "
               "default BENCH_DEVICE or bench.toml's device, else auto")


def evaluate(
    algorithm: str = typer.Argument(..., help="an algorithm name (bench algorithms list)"),
    dataset: str = typer.Argument(..., help="a dataset version, or namespace/name for its latest"),
    seeds: int = typer.Option(1, "--seeds", help="number of seeds (0, 1, ..., n-1)"),
    seed_list: Optional[str] = typer.Option(None, "--seed-list", help="explicit seeds, e.g. 3,7,11"),
    offline_steps: int = typer.Option(20000, "--offline-steps", help="gradient updates on the dataset"),
    online_steps: int = typer.Option(20000, "--online-steps", help="environment steps of online fine-tuning"),
    eval_every: int = typer.Option(5000, "--eval-every", help="evaluate every K updates / environment steps"),
    eval_episodes: int = typer.Option(10, "--eval-episodes", help="evaluation episodes (fixed seeds)"),
    log_every: int = typer.Option(1000, "--log-every", help="record training losses every K steps"),
    online_evals_at: Optional[str] = typer.Option(None, "--online-evals-at",
                                                  help="extra evaluations at these online steps, e.g. 250,500,1000: "
                                                       "dense around the switch from offline to online"),
    overrides: list[str] = typer.Option([], "--set", help="config override key=value (repeatable)"),
    online_env: str = typer.Option("dataset", "--online-env",
                                   help="'dataset' (its own environment) or 'held-out' (a new scene of held-out "
                                        "shapes and colours, per seed; tabletop)"),
    task: Optional[str] = typer.Option(None, "--task", help="the evaluation task of a scene family (tabletop: "
                                                            "drawer-open, button-press, object-in-tray, ...)"),
    env_options: list[str] = typer.Option([], "--env-set",
                                          help="environment option key=value (repeatable), recorded with each run: "
                                               "actuation_bias / actuation_noise (eq. 24's mu, sigma), or the "
                                               "environment's own (block insertion's rotation_range, ...)"),
    eval_env_options: list[str] = typer.Option([], "--eval-env-set",
                                               help="environment option key=value for evaluation alone, over "
                                                    "--env-set (repeatable): practise in one setting, be tested "
                                                    "in another (goal_noise=0.001)"),
    executor: str = typer.Option("local", "--executor", help="local, process or ray"),
    model_cache: bool = typer.Option(True, "--model-cache/--no-model-cache",
                                     help="latent-goal runs: reuse the representation, PixelCNN and offline policy "
                                          "an earlier run of the same data, config and seed trained"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="an existing Ray cluster (ray executor)"),
    device: Optional[str] = typer.Option(None, "--device", help=DEVICE_HELP),
    precision: str = typer.Option("fp32", "--precision",
                                  help="fp32, or bf16: losses under bfloat16 autocast (weights stay fp32); "
                                       "for the pixel models and large networks on a GPU"),
    cpus_per_run: float = typer.Option(1.0, "--cpus-per-run", help="ray executor: CPUs each run asks for"),
    gpus_per_run: float = typer.Option(0.0, "--gpus-per-run",
                                       help="ray executor: GPUs each run asks for; a fraction packs several runs "
                                            "on one GPU (0.25: four)"),
    batch_seeds: bool = typer.Option(False, "--batch-seeds",
                                     help="train the seeds together as one batched model (runs on states): one "
                                          "update and one policy pass per step for all of them; each seed is "
                                          "still its own run"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train ALGORITHM on DATASET offline, fine-tune it online, and score it over seeds."""
    from bench.evaluation.store import RunStore
    from bench.evaluation.executors import RayResources, execute_sweep, ray_session
    from bench.evaluation.sweeps import Budget, parse_env_options, parse_overrides, parse_steps, plan_sweep, seeds_from

    with user_errors():
        registry = open_registry()
        store = RunStore(registry.engine)
        budget = Budget(offline_steps, online_steps, eval_every, eval_episodes, log_every,
                        parse_steps(online_evals_at, "--online-evals-at"))
        resources = RayResources(cpus_per_run, gpus_per_run)
        # Connected (and the cluster's resources checked) before planning: nothing is recorded for a sweep
        # Ray could not place.
        with ray_session(executor, ray_address, resources):
            specs = plan_sweep(registry, store, algorithm, dataset, seeds_from(seeds, seed_list), budget,
                               parse_overrides(overrides), executor, online_env, task, model_cache,
                               parse_env_options(env_options), parse_env_options(eval_env_options),
                               device or registry.settings.device, resources, precision, batch_seeds)
            err.print(f"sweep of {plural(len(specs), 'run')}: {', '.join(s.run_id for s in specs)}", markup=False,
                      highlight=False)
            with _run_progress(not as_json and executor != "ray") as progress:
                execute_sweep(specs, registry.settings, store, executor, ray_address, progress, resources=resources)
        _report_sweep(store, [s.run_id for s in specs], as_json)


@runs_app.command("list")
def runs_list(
    algorithm: Optional[str] = typer.Option(None, "--algo"),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    status: Optional[str] = typer.Option(None, "--status"),
    limit: int = typer.Option(100, "--limit"),
    server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Runs, newest first, with their final offline and online results."""
    from bench.evaluation.store import RunInfo, RunStore, run_json

    with user_errors():
        client = client_for(server)
        if client is not None:
            page = client.runs(algorithm=algorithm, dataset=dataset, status=status, limit=min(limit, 500))
            runs = [RunInfo(**{**item, "checkpoint": None}) for item in page["items"]]
        else:
            runs = RunStore(open_registry().engine).list(algorithm, dataset, status, limit=limit)
        if as_json:
            print_json([{**run_json(run), "algorithm": run.algorithm, "dataset_id": run.dataset_id,
                          "sweep_id": run.sweep_id, "created_at": run.created_at} for run in runs])
            return
        table = Table("run", "algorithm", "dataset", "seed", "status", "progress", "offline", "online", box=None)
        for run in runs:
            item = run_json(run)
            progress = f"{run.progress['phase']} {run.progress['step']}/{run.progress['total']}" if run.progress else "-"
            table.add_row(run.id, run.algorithm, run.dataset_id, str(run.seed), run.status, progress,
                          _headline(item["offline"]), _headline(item["online"]))
        out.print(table)


def _headline(values: dict[str, Any] | None) -> str:
    if not values:
        return "-"
    if values.get("normalized_score") is not None:
        return f"score {values['normalized_score']:.1f}"
    return f"return {values['return']:.3g}"


@runs_app.command("show")
def runs_show(run_id: str = typer.Argument(...), server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP),
              as_json: bool = typer.Option(False, "--json")) -> None:
    """One run: config, provenance, curves and results."""
    from bench.evaluation.store import RunInfo, RunStore

    with user_errors():
        client = client_for(server)
        if client is not None:
            run = RunInfo(**{**client.run(run_id), "checkpoint": None})
            curves = client.curves(run_id)
        else:
            store = RunStore(open_registry().engine)
            run = store.get(run_id)
            curves = store.curves(run_id)
        if as_json:
            print_json({**run.to_json(), "curves": curves})
            return
        out.print(f"run {run.id} ({run.status}): {run.algorithm} on {run.dataset_id}, seed {run.seed}", highlight=False)
        out.print(f"dataset content sha256 {run.dataset_content_sha256}; env {run.env_name}", highlight=False)
        out.print(f"code {run.code_version} on {run.host}; config hash {run.config_hash[:16]}", highlight=False)
        for stretch in (run.results or {}).get("runtime") or []:
            name = f" ({stretch['device_name']})" if stretch.get("device_name") else ""
            out.print(f"from {stretch['phase']} step {stretch['step']}: device {stretch['device']}{name}, "
                      f"{stretch.get('precision', 'fp32')}, torch {stretch['torch']}, "
                      f"CUDA {stretch.get('cuda') or 'none'}", highlight=False)
        out.print(f"config {json.dumps(run.config)}", highlight=False)
        plan = run.plan
        out.print(f"plan: {plan['offline_steps']} offline updates, {plan['online_steps']} online steps, "
                  f"eval every {plan['eval_every']} x {plan['eval_episodes']} episodes"
                  + (f" and online at {', '.join(map(str, plan['online_evals_at']))}" if plan.get("online_evals_at") else "")
                  + f", executor {plan['executor']}", highlight=False)
        table = Table("phase", "step", "return", "score", "success", box=None)
        for point in curves:
            if point["kind"] == "eval":
                table.add_row(point["phase"], str(point["step"]), _number(point["return"]),
                              _number(point.get("normalized_score")), _number(point.get("success_rate")))
        out.print(table)
        evaluations = [point for point in curves if point["kind"] == "eval"]
        if evaluations and all(point.get("success_rate") is None for point in evaluations):
            out.print(NO_SUCCESS, highlight=False)
        if run.timings:
            out.print("timings " + ", ".join(f"{k} {v:.3g}" for k, v in run.timings.items()), highlight=False)
        if run.error:
            out.print(f"error: {run.error}", highlight=False)


@runs_app.command("resume")
def runs_resume(
    run_ids: list[str] = typer.Argument(..., help="interrupted, failed or pending runs"),
    executor: str = typer.Option("local", "--executor"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address"),
    device: Optional[str] = typer.Option(None, "--device", help="where to continue (auto, cpu, cuda, cuda:N); "
                                                                "default: the device the run was planned with"),
    cpus_per_run: float = typer.Option(1.0, "--cpus-per-run", help="ray executor: CPUs each run asks for"),
    gpus_per_run: float = typer.Option(0.0, "--gpus-per-run", help="ray executor: GPUs each run asks for"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Continue runs from their last checkpoints (a run without one starts over)."""
    from bench.evaluation.store import RunStore
    from bench.evaluation.executors import RayResources, execute_sweep, ray_session
    from bench.evaluation.sweeps import spec_for_resume

    with user_errors():
        registry = open_registry()
        store = RunStore(registry.engine)
        resources = RayResources(cpus_per_run, gpus_per_run)
        specs = [spec_for_resume(store, run_id, device, executor) for run_id in run_ids]
        for spec in specs:
            resources.check(executor, spec.device)
        with ray_session(executor, ray_address, resources), _run_progress(not as_json and executor != "ray") as progress:
            execute_sweep(specs, registry.settings, store, executor, ray_address, progress, resume=True,
                          resources=resources)
        _report_sweep(store, run_ids, as_json)


@runs_app.command("mark-failed")
def runs_mark_failed(
    run_ids: list[str] = typer.Argument(..., help="running or pending runs whose worker is gone"),
    reason: str = typer.Option("its worker died", "--reason"),
) -> None:
    """Mark runs whose worker died as failed, so `bench runs resume` can continue them from their checkpoints."""
    from bench.evaluation.store import RunStore

    with user_errors():
        store = RunStore(open_registry().engine)
        for run_id in run_ids:
            store.mark_failed(run_id, reason)
            out.print(f"{run_id} marked failed; `bench runs resume {run_id}` continues it", highlight=False)


# -- results and leaderboards ---------------------------------------------------------------------------------
@results_app.command("push")
def results_push(run_ids: list[str] = typer.Argument(..., help="finished local runs (bench runs list)"),
                 server: Optional[str] = typer.Option(None, "--server", help=SERVER_HELP)) -> None:
    """Publish local runs (config, provenance, curves, results) to a server's leaderboards."""
    from bench.evaluation.store import RunStore

    with user_errors():
        client = require_client(server, "bench results push")
        store = RunStore(open_registry().engine)
        for run_id in run_ids:
            run = store.get(run_id)
            stored = client.push_run({k: v for k, v in run.to_json().items() if k not in {"checkpoint", "owner"}},
                                     store.curves(run_id))
            out.print(f"pushed {stored['id']} ({run.algorithm} on {run.dataset_id}, seed {run.seed}) as {stored['owner']}",
                      highlight=False)
