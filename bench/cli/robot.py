"""`bench robot-logs import` and `bench robot-evals ...`: real-robot logs and success labels of trials."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bench.cli.common import open_registry, out, print_json, stages, user_errors
from bench.errors import InvalidInput
from bench.platform.units import human_size, plural


robot_logs_app = typer.Typer(no_args_is_help=True, help="Real-robot logs: import ROS bags, LeRobot v3 datasets, plain folders.")
robot_evals_app = typer.Typer(no_args_is_help=True, help="Real-robot evaluations: success labels per trial.")


# -- real-robot logs and evaluations -----------------------------------------------------------------------
@robot_logs_app.command("import")
def robot_logs_import(
    path: Path = typer.Argument(..., help="a ROS 1/2 bag (or a directory of bags), a LeRobot v3 dataset directory, "
                                          "or a plain log folder (docs/robot-logs.md)"),
    id: str = typer.Option(..., "--id", help="namespace/name (next version)"),
    robot: Optional[str] = typer.Option(None, "--robot", help="e.g. sawyer (default: from the log's metadata)"),
    task: Optional[str] = typer.Option(None, "--task", help='e.g. "open drawer"'),
    lab: Optional[str] = typer.Option(None, "--lab"),
    format: Optional[str] = typer.Option(None, "--format", help="rosbag, lerobot or robot-folder (default: detect)"),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="ROS bags: which topics are state, action, "
                                                                   "cameras and clock (JSON or YAML)"),
    description: Optional[str] = typer.Option(None, "--description"),
    license: Optional[str] = typer.Option(None, "--license"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Import a real-robot log as a new version: frames, commands, timestamps, labels, videos, original files."""
    from bench.datasets.interop import ROBOT_LOG_FORMATS, detect_format

    with user_errors():
        chosen = format or detect_format(path)
        if chosen not in ROBOT_LOG_FORMATS:
            raise InvalidInput(f"{path} is a {chosen} dataset, not a robot log ({', '.join(ROBOT_LOG_FORMATS)}); "
                               "use bench datasets import")
        options = {key: value for key, value in (("robot", robot), ("task", task), ("lab", lab)) if value}
        if mapping is not None:
            if chosen != "rosbag":
                raise InvalidInput("--mapping applies to ROS bags only")
            options["mapping"] = str(mapping)
        registry = open_registry()
        with stages(f"importing {path.name} as {id}") as stage:
            info = registry.import_path(path, id, format=chosen, description=description, license=license,
                                        progress=stage, source_options=options)
        if as_json:
            print_json(info.to_json())
            return
        out.print(f"published {info.id}: {plural(info.episodes, 'episode')}, {plural(info.steps, 'step')}, "
                  f"{human_size(info.size_bytes)} (tags: {', '.join(info.tags)})", highlight=False)
        manifest = registry.manifest(info.id)
        robot_info = ((manifest.get("provenance") or {}).get("source_metadata") or {}).get("robot") or {}
        cameras = robot_info.get("cameras") or {}
        described = [f"{name} ({c['width']}x{c['height']}, {c['storage']})" for name, c in cameras.items()]
        rate = f"; {robot_info['fps']:g} frames per second" if robot_info.get("fps") else ""
        out.print(f"cameras: {', '.join(described) or 'none'}{rate}", highlight=False)
        for note in (manifest.get("provenance") or {}).get("notes") or []:
            out.print(f"  {note}", highlight=False)


@robot_evals_app.command("add")
def robot_evals_add(
    dataset: str = typer.Argument(..., help="the robot log the trials belong to (namespace/name)"),
    policy: str = typer.Option(..., "--policy", help="e.g. val, iql"),
    phase: str = typer.Option(..., "--phase", help="offline, or online (after fine-tuning)"),
    trials: Path = typer.Option(..., "--trials", help="CSV: success[,trial,task,judge,notes]"),
    task: Optional[str] = typer.Option(None, "--task", help="the task, when the CSV has no task column"),
    judge: Optional[str] = typer.Option(None, "--judge", help="who labeled them, when the CSV has no judge column"),
) -> None:
    """Record real-robot trials with their success labels."""
    from bench.leaderboards.robot_evals import RobotEvals, read_trials_csv

    with user_errors():
        registry = open_registry()
        registry.show(dataset)  # the log must exist
        count = RobotEvals(registry.engine).add(dataset, policy, phase, read_trials_csv(trials), task, judge)
        out.print(f"recorded {plural(count, f'{phase} trial')} of {policy} on {dataset}", highlight=False)


@robot_evals_app.command("show")
def robot_evals_show(dataset: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Success rates per task and policy, offline -> online, with Wilson 95% intervals."""
    from bench.leaderboards.robot_evals import RobotEvals, rate_text

    with user_errors():
        evals = RobotEvals(open_registry().engine)
        summary = evals.summary([dataset])
        if as_json:
            print_json({"summary": summary, "trials": evals.trials(dataset)})
            return
        table = Table("task", "policy", "offline", "online", box=None)
        for entry in summary:
            table.add_row(entry["task"], entry["policy"], rate_text(entry["offline_success"]),
                          rate_text(entry["online_success"]))
        out.print(table if summary else f"no trials recorded for {dataset}")
