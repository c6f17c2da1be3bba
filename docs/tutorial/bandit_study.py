"""Tutorial study: optimising a biased proxy reward lowers the true reward (Goodhart)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
from bandit_agent import EpsilonGreedy
from bandit_env import ENV_ID, register_envs
from pydantic import Field

from sandbox.config import StudyConfig
from sandbox.report import config_columns, markdown_table, mean_ci
from sandbox.study import Preset, RunContext, Study

register_envs()


class ProxyBanditConfig(StudyConfig):
    proxy_bias: float = Field(0.0, ge=0, description="extra observed reward of the flattering arm")
    gap: float = Field(0.5, gt=0, description="how much better the honest arm truly is")
    steps: int = Field(300, gt=0, description="pulls per run")
    epsilon: float = Field(0.1, ge=0, le=1, description="exploration rate of the agent")


class ProxyBanditStudy(Study):
    name = "proxy-bandit"
    version = "1"
    summary = "An epsilon-greedy agent on a proxy reward: true return vs proxy bias"
    paper = "Tutorial example of Goodhart's law (no paper)"
    Config = ProxyBanditConfig
    presets = {
        "quick": Preset(grid={"proxy_bias": [0.0, 1.0]}, seeds=3, description="2 biases x 3 seeds"),
        "full": Preset(grid={"proxy_bias": [0.0, 0.25, 0.5, 0.75, 1.0]}, seeds=20),
    }

    def run(self, config: ProxyBanditConfig, seed: int, ctx: RunContext) -> pd.DataFrame:
        env = gym.make(
            ENV_ID,
            true_means=(1.0, 1.0 - config.gap),
            proxy_bias=config.proxy_bias,
            horizon=config.steps,
        )
        agent = EpsilonGreedy(2, config.epsilon, np.random.default_rng(seed))
        env.reset(seed=seed)
        proxy, true, flattering = [], [], []
        truncated = False
        while not truncated:
            action = agent.act()
            _, reward, _, truncated, info = env.step(action)
            agent.update(action, reward)
            proxy.append(reward)
            true.append(info["true_reward"])
            flattering.append(action == 1)
            ctx.progress(len(true), config.steps)
        env.close()
        return pd.DataFrame(
            {
                "metric": ["true_return", "proxy_return", "flattering_share"],
                "value": [np.mean(true), np.mean(proxy), np.mean(flattering)],
            }
        )

    def summarize(self, results: pd.DataFrame, manifest: dict) -> str:
        results = config_columns(results, manifest, ["proxy_bias"])
        table = mean_ci(results, ["proxy_bias", "metric"])
        true = table[table["metric"] == "true_return"].set_index("proxy_bias")
        lo_bias, hi_bias = true.index.min(), true.index.max()
        if lo_bias == hi_bias:
            verdict = "Not testable: run at least two proxy biases."
        elif true.loc[hi_bias, "hi"] < true.loc[lo_bias, "lo"]:
            verdict = f"**Supported**: the true return falls from bias {lo_bias:g} to {hi_bias:g}."
        else:
            verdict = "**Not supported**: the true return did not fall significantly."
        return "\n\n".join(
            [
                "Claim: optimising a proxy that over-rates a worse arm lowers the true return.",
                verdict,
                markdown_table(table),
            ]
        )

    def plot(self, results: pd.DataFrame, figure_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if "proxy_bias" not in results.columns:
            return super().plot(results, figure_dir)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for metric in ("true_return", "proxy_return"):
            agg = mean_ci(results[results["metric"] == metric], ["proxy_bias"])
            ax.errorbar(
                agg["proxy_bias"],
                agg["mean"],
                yerr=agg["hi"] - agg["mean"],
                marker="o",
                capsize=3,
                label=metric,
            )
        ax.set_xlabel("proxy bias of the flattering arm")
        ax.set_ylabel("mean reward per pull")
        ax.legend()
        fig.tight_layout()
        path = figure_dir / "returns_vs_bias.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return [path]


STUDY = ProxyBanditStudy()
