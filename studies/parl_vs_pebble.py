"""PARL vs PEBBLE: preference-based RL as a bilevel problem (Chakraborty et al., ICLR 2024).

The setting of the paper's control experiments: a SAC agent learns DM Control locomotion
or Meta-World manipulation from a scripted teacher's preferences over pairs of 50-step
segments of its own behaviour (B-Pref's teachers), never seeing the task reward.

* ``pebble`` (Lee et al. 2021): unsupervised state-entropy pre-training, then feedback
  sessions every ``session_interval`` steps (``queries_per_session`` queries each, picked
  by ``query_selection``), an ensemble reward model fitted to every label so far, and the
  whole replay buffer relabelled after each update.
* ``parl``: the same loop whose reward update also follows the policy-dependent part of
  the bilevel gradient, Cov(U, grad R(sigma_1) + grad R(sigma_2)) / alpha over the latest
  session's pairs (``hypergradient="covariance"``), or the score-function term through
  K differentiated SAC actor updates (``"unrolled"``); derivations and approximations in
  :mod:`agents.pbrl`. ``hypergradient="none"`` is PEBBLE exactly.
* ``sac_true_reward``: SAC on the task reward, the upper bound that defines the target.

Every ``eval_interval`` steps the deterministic policy is evaluated on the true reward;
the run records ``true_return``, ``success_rate`` (Meta-World), ``feedback_used`` and
``reward_model_accuracy`` (agreement with the true preference on fresh random pairs of
recent behaviour, outside the budget). The report measures, per method and teacher, the
environment steps and feedback needed to reach ``TARGET_FRACTION`` of the oracle SAC's
final return, and compares PARL with PEBBLE there: the paper's claim is up to 63% fewer
samples than PEBBLE.

The quick preset (cartpole-swingup, 2,000 steps, small networks) proves the loop in about
two minutes on two CPU cores; it does not test the claim. The ``full*`` presets are the
paper's tasks and budgets and need a GPU or a Ray cluster (hours per run).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from agents.pbrl import PbRLSettings, PreferenceSAC
from sandbox.config import StudyConfig
from sandbox.preferences.teachers import Teacher
from sandbox.report import config_columns, markdown_table, mean_ci, save_figure
from sandbox.study import Preset, RunContext, Study

TARGET_FRACTION = 0.8  # of the oracle SAC's final return
PAPER_REDUCTION = 0.63  # "up to 63% fewer samples than PEBBLE"

TaskName = Literal[
    "walker-walk",
    "walker-run",
    "cheetah-run",
    "quadruped-walk",
    "cartpole-swingup",
    "point_mass-easy",
    "metaworld-door-open",
    "metaworld-button-press",
    "metaworld-drawer-open",
    "metaworld-sweep-into",
    "metaworld-window-open",
    "metaworld-reach",
]


class ParlConfig(StudyConfig):
    task: TaskName = Field(
        "walker-walk",
        description="DM Control <domain>-<task> or metaworld-<task> (envs.control ids)",
    )
    method: Literal["sac_true_reward", "pebble", "parl"] = Field(
        "parl", description="learner: oracle SAC on the true reward, PEBBLE, or PARL"
    )
    hypergradient: Literal["none", "covariance", "unrolled"] = Field(
        "covariance",
        description="PARL's policy-dependent gradient term (none = PEBBLE's update exactly)",
    )
    unroll_steps: int = Field(
        3, ge=1, description="SAC actor steps differentiated through (hypergradient=unrolled)"
    )
    parl_scale: float = Field(1.0, ge=0, description="weight of PARL's covariance term")
    teacher: Literal["oracle", "noisy", "mistake", "skip", "myopic", "equal"] = Field(
        "oracle", description="B-Pref scripted teacher preset"
    )
    feedback_budget: int = Field(1000, gt=0, description="total queries the teacher answers")
    queries_per_session: int = Field(100, gt=0, description="queries per feedback session")
    session_interval: int = Field(
        20_000, gt=0, description="environment steps between feedback sessions"
    )
    total_steps: int = Field(500_000, gt=0, description="environment (agent) steps per run")
    segment_length: int = Field(50, gt=0, description="steps per queried segment (H)")
    query_selection: Literal["uniform", "disagreement", "entropy"] = Field(
        "disagreement",
        description="how queries are picked from a 10x larger random candidate batch",
    )
    unsup_steps: int = Field(
        9000, ge=1, description="steps of state-entropy pre-training before the first query"
    )
    learning_starts: int = Field(1000, ge=1, description="initial steps of random actions")
    action_repeat: int = Field(1, ge=1, description="DM Control action repeat")
    episode_steps: int = Field(
        0, ge=0, description="cap on episode length in agent steps (0 = the task's own)"
    )
    eval_interval: int = Field(10_000, gt=0, description="steps between evaluations")
    eval_episodes: int = Field(10, gt=0, description="episodes per evaluation")
    net_width: int = Field(1024, gt=0, description="SAC actor/critic hidden units per layer")
    net_depth: int = Field(2, gt=0, description="SAC actor/critic hidden layers")
    batch_size: int = Field(1024, gt=0, description="SAC minibatch size")
    learning_rate: float = Field(5e-4, gt=0, description="SAC learning rate")
    reward_width: int = Field(256, gt=0, description="reward-model hidden units (3 layers)")
    reward_epochs: int = Field(
        50, gt=0, description="max reward-model epochs per update (stops at 97% train accuracy)"
    )
    query_window: int = Field(
        100_000, gt=0, description="recent steps that query segments are cut from"
    )


_PAPER_DMC = {
    "net_width": 1024,
    "net_depth": 2,
    "batch_size": 1024,
    "unsup_steps": 9000,
    "learning_starts": 1000,
    "segment_length": 50,
    "eval_interval": 10_000,
    "eval_episodes": 10,
}
_PAPER_METAWORLD = {
    "net_width": 256,
    "net_depth": 3,
    "batch_size": 512,
    "learning_rate": 3e-4,
    "unsup_steps": 9000,
    "learning_starts": 1000,
    "segment_length": 50,
    "total_steps": 1_000_000,
    "session_interval": 5000,
    "eval_interval": 20_000,
    "eval_episodes": 10,
}
_METHODS = ["sac_true_reward", "pebble", "parl"]


# Small networks on cartpole-swingup with action repeat 8 (125 agent steps an episode):
# oracle SAC reaches ~840 of 1000 within 6k steps on a CPU.
_CARTPOLE_SMALL: dict[str, Any] = {
    "task": "cartpole-swingup",
    "action_repeat": 8,
    "total_steps": 2000,
    "unsup_steps": 500,
    "learning_starts": 250,
    "session_interval": 250,
    "queries_per_session": 20,
    "feedback_budget": 100,
    "segment_length": 25,
    "eval_interval": 500,
    "eval_episodes": 2,
    "net_width": 64,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "reward_width": 64,
    "reward_epochs": 20,
    "query_window": 20_000,
}


def _dmc_full(task: str, budgets: list[int], total: int, per_session: int) -> Preset:
    return Preset(
        set={**_PAPER_DMC, "task": task, "total_steps": total, "queries_per_session": per_session},
        grid={"method": _METHODS, "feedback_budget": budgets},
        seeds=5,
        description=f"the paper's {task}: feedback {budgets} over {total:,} steps (GPU / Ray)",
    )


def _metaworld_full(task: str) -> Preset:
    return Preset(
        set={**_PAPER_METAWORLD, "task": task, "queries_per_session": 50},
        grid={"method": _METHODS, "feedback_budget": [10_000, 20_000]},
        seeds=5,
        description=f"the paper's Meta-World {task}: feedback 10k/20k over 1M steps (GPU / Ray)",
    )


class ParlVsPebble(Study):
    name = "parl-vs-pebble"
    version = "1"
    summary = (
        "PARL's bilevel reward learning vs PEBBLE on SAC with B-Pref teachers (DMC, Meta-World)"
    )
    paper = (
        "Chakraborty, Bedi, Koppel, Wang, Manocha, Wang, Huang: PARL: A Unified Framework for "
        "Policy Alignment in Reinforcement Learning, ICLR 2024"
    )
    Config = ParlConfig
    presets = {
        "quick": Preset(
            set=_CARTPOLE_SMALL,
            grid={"method": _METHODS},
            seeds=2,
            description="cartpole-swingup, 2k steps, small nets: proves the loop (~2 min), not the claim",
        ),
        "cpu": Preset(
            set={
                **_CARTPOLE_SMALL,
                "total_steps": 20_000,
                "session_interval": 2_000,
                "queries_per_session": 40,
                "feedback_budget": 400,
                "eval_interval": 2_000,
                "eval_episodes": 5,
            },
            grid={"method": _METHODS},
            seeds=3,
            description=(
                "cartpole-swingup, 20k steps, 400 feedback, small nets: where PEBBLE starts to "
                "learn; a first look at the claim on 2 CPU cores (~25 min)"
            ),
        ),
        "full": _dmc_full("walker-walk", [500, 1000], 500_000, 100),
        "full-quadruped": _dmc_full("quadruped-walk", [1000, 2000], 1_000_000, 100),
        "full-button-press": _metaworld_full("metaworld-button-press"),
        "full-sweep-into": _metaworld_full("metaworld-sweep-into"),
    }

    def run(self, config: ParlConfig, seed: int, ctx: RunContext) -> pd.DataFrame:
        os.environ.setdefault("MUJOCO_GL", "egl")
        from envs.control import make

        env_kwargs: dict[str, Any] = {}
        if not config.task.startswith("metaworld-"):
            env_kwargs["action_repeat"] = config.action_repeat
        if config.episode_steps:
            env_kwargs["max_episode_steps"] = config.episode_steps
        settings = PbRLSettings(
            method=config.method,
            hypergradient=config.hypergradient,
            parl_scale=config.parl_scale,
            unroll_steps=config.unroll_steps,
            feedback_budget=config.feedback_budget,
            queries_per_session=config.queries_per_session,
            session_interval=config.session_interval,
            segment_length=config.segment_length,
            query_selection=config.query_selection,
            unsup_steps=config.unsup_steps,
            learning_starts=min(config.learning_starts, config.unsup_steps),
            query_window=config.query_window,
            reward_hidden=(config.reward_width,) * 3,
            reward_epochs=config.reward_epochs,
            net_arch=(config.net_width,) * config.net_depth,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            buffer_size=config.total_steps,
        )
        teacher = Teacher.preset(config.teacher, np.random.default_rng([seed, 1]))
        agent = PreferenceSAC(
            lambda: make(config.task, hide_reward=True, **env_kwargs),
            settings,
            teacher=teacher,
            seed=seed,
            device=ctx.device,
        )
        rows: list[dict[str, Any]] = []
        metaworld = config.task.startswith("metaworld-")

        def record(ev: Any) -> None:
            values = {
                "true_return": ev.true_return,
                "feedback_used": float(ev.feedback_used),
                "reward_model_accuracy": ev.reward_model_accuracy,
                "sac_alpha": ev.alpha,
            }
            if metaworld:
                values["success_rate"] = ev.success_rate
            for metric, value in values.items():
                if not math.isnan(value):
                    rows.append({"metric": metric, "value": float(value), "step": ev.step})
            ctx.progress(ev.step, config.total_steps)

        try:
            agent.learn(config.total_steps, config.eval_interval, config.eval_episodes, record)
        finally:
            agent.close()
        return pd.DataFrame(rows, columns=["metric", "value", "step"])

    # -- report ------------------------------------------------------------------------
    @staticmethod
    def _with_config(results: pd.DataFrame, manifest: Any) -> pd.DataFrame:

        return config_columns(results, manifest, ["task", "method", "teacher", "feedback_budget"])

    @staticmethod
    def steps_to_target(results: pd.DataFrame) -> pd.DataFrame:
        """Per run: the first evaluation step (and the feedback used by then) at which the
        true return reaches TARGET_FRACTION of the oracle's final mean return on its task.

        ``results`` needs the columns task, method, teacher, feedback_budget (see
        :func:`sandbox.report.config_columns`). Runs that never reach it get NaN.
        """
        ret = results[results["metric"] == "true_return"]
        fb = results[results["metric"] == "feedback_used"]
        out = []
        for task, tdf in ret.groupby("task"):
            oracle = tdf[tdf["method"] == "sac_true_reward"]
            if oracle.empty:
                continue
            last = oracle.loc[oracle.groupby("run_id")["step"].idxmax()]
            target = TARGET_FRACTION * float(last["value"].mean())
            for run_id, run in tdf.groupby("run_id"):
                run = run.sort_values("step")
                hit = run[run["value"] >= target]
                step = float(hit["step"].iloc[0]) if not hit.empty else math.nan
                feedback = math.nan
                if not hit.empty:
                    f = fb[(fb["run_id"] == run_id) & (fb["step"] == hit["step"].iloc[0])]
                    feedback = float(f["value"].iloc[0]) if not f.empty else 0.0
                first = run.iloc[0]
                out.append(
                    {
                        "task": task,
                        "method": first["method"],
                        "teacher": first["teacher"],
                        "feedback_budget": first["feedback_budget"],
                        "seed": first["seed"],
                        "target": target,
                        "first_eval_step": float(run["step"].iloc[0]),
                        "steps_to_target": step,
                        "feedback_to_target": feedback,
                    }
                )
        return pd.DataFrame(out)

    def summarize(self, results: pd.DataFrame, manifest: Any) -> str:

        if results.empty:
            return "No results."
        df = self._with_config(results, manifest)
        keys = ["task", "method", "teacher", "feedback_budget"]
        last_step = df.groupby("run_id")["step"].transform("max")
        final = df[df["step"] == last_step]
        lines = [
            f"Targets are {TARGET_FRACTION:.0%} of the oracle SAC's final true return on the "
            "same task (mean over its seeds). Intervals are 95% t-intervals over seeds.",
            "",
            "## Final performance",
            "",
        ]
        for metric in ("true_return", "success_rate", "reward_model_accuracy", "feedback_used"):
            sub = final[final["metric"] == metric]
            if sub.empty:
                continue
            lines += [f"**{metric}** (last evaluation)", "", markdown_table(mean_ci(sub, keys)), ""]

        hits = self.steps_to_target(df)
        lines += ["## Steps and feedback to reach the target", ""]
        if hits.empty:
            lines += [
                "No oracle (sac_true_reward) runs, so no target: add method=sac_true_reward.",
                "",
            ]
            return "\n".join(lines)
        table = []
        for key, g in hits.groupby(keys, sort=True):
            reached = g["steps_to_target"].notna()
            table.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "reached": f"{int(reached.sum())}/{len(g)}",
                    "steps (mean of reached)": g.loc[reached, "steps_to_target"].mean()
                    if reached.any()
                    else math.nan,
                    "feedback (mean of reached)": g.loc[reached, "feedback_to_target"].mean()
                    if reached.any()
                    else math.nan,
                    "target": g["target"].iloc[0],
                }
            )
        lines += [markdown_table(pd.DataFrame(table)), ""]
        lines += ["## The paper's claim", ""]
        lines += self._claim(hits)
        return "\n".join(lines)

    @staticmethod
    def _claim(hits: pd.DataFrame) -> list[str]:
        lines = [
            "Paper: PARL reaches PEBBLE's performance with up to 63% fewer samples "
            "(DM Control walker-walk, quadruped-walk; Meta-World button-press, sweep-into).",
            "",
        ]
        compared = False
        for (task, teacher, budget), g in hits.groupby(["task", "teacher", "feedback_budget"]):
            pebble = g[g["method"] == "pebble"]["steps_to_target"]
            parl = g[g["method"] == "parl"]["steps_to_target"]
            if pebble.empty or parl.empty:
                continue
            compared = True
            where = f"{task}, teacher {teacher}, budget {budget}"
            if pebble.notna().sum() == 0 and parl.notna().sum() == 0:
                lines.append(f"- {where}: neither method reached the target: inconclusive.")
                continue
            if parl.notna().sum() == 0:
                lines.append(
                    f"- {where}: PEBBLE reached the target, PARL did not: does not support."
                )
                continue
            if pebble.notna().sum() == 0:
                lines.append(f"- {where}: PARL reached the target, PEBBLE did not: supports.")
                continue
            first = g[g["method"].isin(["pebble", "parl"])]
            if (first["steps_to_target"] == first["first_eval_step"]).all():
                lines.append(
                    f"- {where}: both methods were at the target at their first evaluation "
                    "(the target is too easy at this scale): inconclusive."
                )
                continue
            reduction = 1 - parl.mean() / pebble.mean()
            verdict = "supports" if reduction > 0 else "does not support"
            partial = ""
            if parl.isna().any() or pebble.isna().any():
                partial = " (means over the seeds that reached it)"
            lines.append(
                f"- {where}: PARL needed {parl.mean():,.0f} steps vs PEBBLE's {pebble.mean():,.0f}"
                f"{partial}, {reduction:+.0%} fewer (paper: up to {PAPER_REDUCTION:.0%}): {verdict}."
            )
        if not compared:
            lines.append("- No task with both PEBBLE and PARL runs: nothing to compare.")
        lines += [
            "",
            "The quick and cpu presets (cartpole, small networks, 2k and 20k steps) exercise "
            "the loop and give a first look; only the full presets are sized to test the claim.",
        ]
        return lines

    def plot(self, results: pd.DataFrame, figure_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure_dir.mkdir(parents=True, exist_ok=True)
        group_keys = [c for c in ("task", "method", "teacher", "feedback_budget") if c in results]
        paths = []
        for metric in ("true_return", "success_rate", "reward_model_accuracy", "feedback_used"):
            mdf = results[results["metric"] == metric]
            if mdf.empty:
                continue
            fig, ax = plt.subplots(figsize=(6.5, 4))
            groups = mdf.groupby(group_keys) if group_keys else [("all", mdf)]
            for label, g in groups:
                agg = mean_ci(g, ["step"])
                name = " / ".join(map(str, label)) if isinstance(label, tuple) else str(label)
                ax.plot(agg["step"], agg["mean"], label=name)
                ax.fill_between(agg["step"], agg["lo"], agg["hi"], alpha=0.2)
            ax.set_xlabel("environment steps")
            ax.set_ylabel(metric)
            ax.set_title(f"parl-vs-pebble: {metric} (mean, 95% CI over seeds)")
            ax.legend(fontsize=7)
            paths.append(save_figure(fig, figure_dir / f"{metric}.png"))
        return paths


STUDY = ParlVsPebble()
