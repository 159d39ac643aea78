"""Dissertation ch. 5-6, Figs. 19, 21 and 27: residual RL against RL alone and the hand-designed controller.

    python benchmarks/residual_rl.py --figure fig19 [--home .bench-residual] [--seeds 3] [--write-docs]
    python benchmarks/residual_rl.py --figure fig21 [--write-docs]
    python benchmarks/residual_rl.py --figure fig27 [--write-docs]

  fig19  block insertion, standing blocks straight: learning curves (return, success) of residual TD3
         and SAC, TD3 and SAC alone, and the controller (ch. 5.5.1)
  fig21  block insertion: the final return of residual TD3 and SAC and of the controller (a) as the standing
         blocks' rotation range r grows, (b) as actuation noise sigma grows (mu = 0; the chapter's sigma
         goes to 0.1, bench's to 0.3), (c) as actuation bias mu grows (sigma = 0.05) (ch. 5.5.2-5.5.3, eq. 24)
  fig27  connector insertion, sparse reward (eq. 25) with exact goals and with goals perturbed by
         +-1 mm, dense reward (eq. 26) with perturbed goals (also with the arm's anti-windup, max_lead 5 mm), and the visual setting (the learner sees the
         32 x 32 image alone, the reward is the L1 distance to the goal image; recipe
         insertion/connector-visual/controller) with exact and perturbed goals; and, as the chapter does,
         practised with exact goals and tested with perturbed ones (sparse, visual): the final success rate of
         residual RL (SAC, TD3), RL alone (SAC, TD3), RL + BC from demonstrations (TD3 with ch. 4's BC loss
         and Q-filter on the recipe's noisy controller episodes) and the P-controller (ch. 6.5)

Each run is ``bench evaluate METHOD insertion/TASK/controller --env-set ... [--set ...]`` in the registry at
``home`` (the recipe is built there first), two at a time, one thread each; every finished run is
kept in ``home/report-FIGURE.json``, so an interrupted sweep continues where it stopped. Every
learner standardizes observations with the recipe data's statistics (the data covers the variation
the runs set). The figure's plot is written to docs/images/residual_FIGURE.png; ``--write-docs`` puts its table in
docs/results.md. Runs train and are evaluated in the same environment (the chapter trains with
exact goals and tests with noisy ones: the "exact -> noisy" settings; the others are practised as tested).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

from bench.leaderboards.statistics import wilson_interval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pixel_matrix import bench, ensure_dataset, home_env, runs_env, write_marked_block  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# label -> (algorithm, --set values)
METHODS = {
    "residual-td3": ("residual-td3", []),
    "residual-sac": ("residual-sac", []),
    "td3": ("td3", []),
    "sac": ("sac", []),
    "td3+bc": ("td3", ["demonstrations=true", "bc_loss=true", "q_filter=true"]),
    "controller": ("controller", []),
}
NOISE_FOR_BIAS = 0.05  # Fig. 21c: sigma = 0.05 while mu varies


# The visual setting (ch. 6.3.2.1): the learner reads the 32 x 32 image alone, and the L1 image reward
# (-0.12 a step stuck on the socket, 0 inserted) is scaled to the sparse reward's unit step.
VISUAL = ["observation_keys=image", "reward_scale=10"]


def setting(options: dict, task: str = "blocks", overrides: list[str] | None = None,
            tested: dict | None = None) -> dict:
    """One setting of a figure: the recipe's task, its environment options (--env-set), learner values (--set)
    and the options evaluation adds (--eval-env-set: tested in another setting than practised)."""
    return {"task": task, "env": options, "set": overrides or [], "eval": tested or {}}


def settings_for(figure: str) -> dict[str, dict]:
    """name -> the setting of each column a figure measures."""
    if figure == "fig19":
        return {"straight": setting({"rotation_range": 0.0})}
    if figure == "fig21":
        settings = {f"rotation={r}": setting({"rotation_range": r}) for r in (0.0, 0.1, 0.2, 0.3)}
        # Noise and bias on straight blocks, each effect alone (the catalogue's blocks turn by up to 0.3 rad).
        # The chapter's sigma spans [0.01, 0.1]; bench's controller is unhurt there, so sigma goes on to 0.3.
        settings.update({f"noise={s}": setting({"rotation_range": 0.0, "actuation_noise": s})
                         for s in (0.05, 0.1, 0.2, 0.3)})
        settings.update({f"bias={m}": setting({"rotation_range": 0.0, "actuation_bias": m,
                                               "actuation_noise": NOISE_FOR_BIAS}) for m in (0.1, 0.2)})
        return settings
    noisy = {"goal_noise": 0.001}
    return {"sparse, exact goal": setting({"reward": "sparse"}, "connector"),
            "sparse, noisy goal": setting({"reward": "sparse", **noisy}, "connector"),
            "dense, noisy goal": setting({"reward": "dense", **noisy}, "connector"),
            # The arm's anti-windup bounds the stuck peg's force from ~300 N to ~80 N (insertion_controllers.py)
            "dense 5 mm lead, noisy goal": setting({"reward": "dense", "max_lead": 0.005, **noisy}, "connector"),
            "visual, exact goal": setting({}, "connector-visual", VISUAL),
            "visual, noisy goal": setting(noisy, "connector-visual", VISUAL),
            # The chapter's protocol (ch. 6.6.4): practised with exact goals, tested with perturbed ones
            "sparse, exact -> noisy": setting({"reward": "sparse"}, "connector", tested=noisy),
            "visual, exact -> noisy": setting({}, "connector-visual", VISUAL, tested=noisy)}


FIGURES = {  # figure -> (methods, online steps, evaluation interval)
    "fig19": (["residual-td3", "td3", "residual-sac", "sac", "controller"], 10000, 1000),
    "fig21": (["residual-td3", "residual-sac", "controller"], 10000, 2000),
    "fig27": (["residual-sac", "residual-td3", "sac", "td3", "td3+bc", "controller"], 6000, 1000),
}


def run_sweep(home: str, figure: str, seeds: int, online_steps: int, eval_every: int, eval_episodes: int,
              parallel: int = 2) -> dict:
    methods, _, _ = FIGURES[figure]
    env = home_env(home)
    settings = settings_for(figure)
    for task in sorted({s["task"] for s in settings.values()}):
        ensure_dataset(env, f"insertion/{task}/controller", 50)
    run_env = runs_env(env, parallel)
    budget = {"online_steps": online_steps, "eval_every": eval_every, "eval_episodes": eval_episodes}
    path = Path(home) / f"report-{figure}.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    same = saved.get("budget") == budget
    runs: dict[str, dict] = saved.get("runs", {}) if same else {}
    lock = threading.Lock()

    def run_one(method: str, name: str, seed: int) -> None:
        started = time.perf_counter()
        algorithm, overrides = METHODS[method]
        chosen = settings[name]
        options = [item for key, value in chosen["env"].items() for item in ("--env-set", f"{key}={value}")]
        options += [item for key, value in chosen["eval"].items() for item in ("--eval-env-set", f"{key}={value}")]
        overrides = [*overrides, *(chosen["set"] if method != "controller" else [])]
        out = bench(run_env, "evaluate", algorithm, f"insertion/{chosen['task']}/controller", "--seed-list", str(seed),
                    "--offline-steps", "0", "--online-steps", str(online_steps), "--eval-every", str(eval_every),
                    "--eval-episodes", str(eval_episodes), *options,
                    *[item for o in overrides for item in ("--set", o)], "--json")
        run = json.loads(out)["runs"][0]
        if run["status"] != "completed":
            raise SystemExit(f"{method}, {name}, seed {seed}: run {run['run_id']} {run['status']}: {run['error']}")
        shown = json.loads(bench(env, "runs", "show", run["run_id"], "--json"))
        curve = {c["step"]: [c["return"], c["success_rate"]] for c in shown["curves"]
                 if c["kind"] == "eval" and (c["phase"] == "online" or method == "controller")}
        record = {"run": run["run_id"], "curve": curve, "seconds": round(time.perf_counter() - started, 1)}
        with lock:
            runs[f"{method}|{name}|{seed}"] = record
            last = curve[max(curve)]
            print(json.dumps({"method": method, "setting": name, "seed": seed, "run": run["run_id"],
                              "final_return": round(last[0], 2), "final_success": last[1],
                              "seconds": record["seconds"]}), file=sys.stderr)
            path.write_text(json.dumps({"budget": budget, "runs": runs}))

    jobs = [(m, s, seed) for s in settings for m in methods for seed in range(seeds)
            if f"{m}|{s}|{seed}" not in runs]
    with ThreadPoolExecutor(parallel) as pool:
        for future in [pool.submit(run_one, *job) for job in jobs]:
            future.result()
    return summarize({"figure": figure, "budget": budget, "runs": runs, "seeds": seeds}, methods, settings)


def summarize(report: dict, methods: list[str], settings: dict) -> dict:
    """Per method and setting: the mean curve over seeds, the final return per seed (mean and 95% t-interval
    over seeds) and the final success pooled over seeds (Wilson 95%)."""
    episodes = report["budget"]["eval_episodes"]
    results: dict[str, dict] = {}
    for method in methods:
        for name in settings:
            records = [report["runs"][f"{method}|{name}|{s}"] for s in range(report["seeds"])]
            curves = [{int(step): value for step, value in r["curve"].items()} for r in records]
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            finals = [c[steps[-1]] for c in curves]
            returns = np.array([f[0] for f in finals])
            # The controller is the same on every seed: its seeds repeat one evaluation, counted once.
            pooled = finals[:1] if method == "controller" else finals
            successes = sum(round(f[1] * episodes) for f in pooled)
            results.setdefault(method, {})[name] = {
                "curve": {step: [float(np.mean([c[step][0] for c in curves])), float(np.mean([c[step][1] for c in curves]))]
                          for step in steps},
                "final_return": {"mean": float(returns.mean()), "ci95": _t_interval(returns),
                                 "per_seed": [round(float(v), 2) for v in returns]},
                "final_success": wilson_interval(successes, episodes * len(pooled)),
                "runs": [r["run"] for r in records], "minutes": sum(r["seconds"] for r in records) / 60}
    return {**report, "results": results}


def _t_interval(values: np.ndarray) -> list[float] | None:
    if len(values) < 2:
        return None
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return [float(values.mean() - half), float(values.mean() + half)]


def plot(report: dict, path: Path) -> None:
    import matplotlib  # here, not at the top: the headless backend must be chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results, figure = report["results"], report["figure"]
    if figure == "fig19":
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for method, per_setting in results.items():
            curve = per_setting["straight"]["curve"]
            steps = sorted(curve)
            for axis, index in zip(axes, (0, 1)):
                values = [curve[s][index] for s in steps]
                if method == "controller":
                    axis.axhline(values[-1], color="k", ls="--", label="controller")
                else:
                    axis.plot(steps, values, label=method)
        axes[0].set_ylabel("return (mean over seeds)")
        axes[1].set_ylabel("success rate")
        for axis in axes:
            axis.set_xlabel("environment steps")
        axes[0].legend()
        fig.suptitle("Block insertion, straight blocks (Fig. 19)")
    elif figure == "fig21":
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
        panels = [("rotation", "rotation range r (rad)"), ("noise", "actuation noise sigma (mu = 0)"),
                  ("bias", f"actuation bias mu (sigma = {NOISE_FOR_BIAS})")]
        for axis, (prefix, label) in zip(axes, panels):
            for method, per_setting in results.items():
                points = sorted((float(name.split("=")[1]), cell["final_return"]["mean"])
                                for name, cell in per_setting.items() if name.startswith(prefix + "="))
                if prefix == "bias" and "noise=0.05" in per_setting:
                    points = [(0.0, per_setting["noise=0.05"]["final_return"]["mean"]), *points]
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=method)
            axis.set_xlabel(label)
        axes[0].set_ylabel("final return (mean over seeds)")
        axes[0].legend()
        fig.suptitle("Block insertion under variation, noise and bias (Fig. 21)")
    else:
        settings = list(next(iter(results.values())))
        fig, axis = plt.subplots(figsize=(16, 3.8))
        width = 0.8 / len(results)
        for i, (method, per_setting) in enumerate(results.items()):
            cells = [per_setting[s]["final_success"] for s in settings]
            rates = [cell["rate"] for cell in cells]
            errors = [[cell["rate"] - cell["ci95"][0] for cell in cells], [cell["ci95"][1] - cell["rate"] for cell in cells]]
            axis.bar(np.arange(len(settings)) + i * width, rates, width, yerr=errors, capsize=2, label=method)
        axis.set_xticks(np.arange(len(settings)) + 0.4 - width / 2, settings, fontsize=8)
        axis.set_ylabel("final success rate (Wilson 95%)")
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: the bars fill the axes
        fig.suptitle("Connector insertion (Fig. 27)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_docs(report: dict) -> None:
    budget, figure = report["budget"], report["figure"]
    lines = ["| method | setting | final return, mean [95% CI] | per seed | final success, pooled [95% CI] |",
             "|---|---|---|---|---|"]
    for method, per_setting in report["results"].items():
        for name, cell in per_setting.items():
            ret, success = cell["final_return"], cell["final_success"]
            interval = f" [{ret['ci95'][0]:.1f}, {ret['ci95'][1]:.1f}]" if ret["ci95"] else ""
            lines.append(f"| {method} | {name} | {ret['mean']:.1f}{interval} | {', '.join(map(str, ret['per_seed']))} | "
                         f"{success['successes']}/{success['trials']} = {success['rate']:.2f} "
                         f"[{success['ci95'][0]:.2f}, {success['ci95'][1]:.2f}] |")
    minutes = sum(cell["minutes"] for per_setting in report["results"].values() for cell in per_setting.values())
    body = ("\n".join(lines) + f"\n\n{report['seeds']} seeds; {budget['online_steps']} online steps per learning run, "
            f"evaluated on {budget['eval_episodes']} fixed episodes every {budget['eval_every']} steps; the final "
            f"evaluation is reported (the controller: its one evaluation, the same on every seed, so its successes "
            f"count once). Success is pooled over seeds' episodes: the per-seed returns show when seeds disagree. "
            f"The runs took {minutes:.0f} min of one core "
            f"each, summed (two at a time on this 2-core machine). Plot: `docs/images/residual_{figure}.png`.\n")
    write_marked_block(f"residual-{figure}", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", choices=sorted(FIGURES), required=True)
    parser.add_argument("--home", default=str(ROOT / ".bench-residual"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--online-steps", type=int, default=None, help="default: the figure's")
    parser.add_argument("--eval-every", type=int, default=None, help="default: the figure's")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    _, steps, every = FIGURES[args.figure]
    report = run_sweep(args.home, args.figure, args.seeds, args.online_steps or steps, args.eval_every or every,
                       args.eval_episodes, args.parallel)
    plot(report, ROOT / "docs" / "images" / f"residual_{args.figure}.png")
    if args.write_docs:
        write_docs(report)
    print(json.dumps({key: value for key, value in report.items() if key != "runs"}, indent=1))


if __name__ == "__main__":
    main()
