"""MaxMin-RLHF and PAL on a population-labelled contextual bandit.

Reproduces, at laptop scale, the experiment of "MaxMin-RLHF: Towards Equitable Alignment
of Large Language Models with Diverse Human Preferences" (Chakraborty et al., ICML 2024):
a population with a majority group and minority groups whose preferences conflict
labels response pairs; standard RLHF fits one reward to everyone and aligns a policy to
it; MaxMin-RLHF learns a mixture of rewards by EM and aligns to the worst-off group. We
add the ideal-point mixture of PAL (Chen et al., 2024) as a third learner, with its
few-shot adaptation to users never seen in training.

The world: prompts x candidate responses, each response an embedding phi in R^dim.
Annotator i has a value vector z_i (its group's centre + spread * N(0, I)); under the
``ideal_point`` model it prefers the response closer to z_i, under ``bradley_terry`` the
one with larger z_i . phi, with Boltzmann noise of temperature ``noise``. A policy is
evaluated by its win rate against the reference policy under each group's true reward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from agents.pluralistic import (
    IdealPointMixture,
    PreferenceData,
    centre_rewards,
    cluster_purity,
    fit_em_mixture,
    fit_single_reward,
    kl_divergence,
    kl_regularized_policy,
    maxmin_policy,
    policy_objective,
    preference_accuracy,
    win_rate,
)
from sandbox.config import StudyConfig
from sandbox.population import Population
from sandbox.report import config_columns, markdown_table, mean_ci, save_figure, t_interval
from sandbox.study import Preset, RunContext, Study

METHODS = ("single", "em_maxmin", "pal")


class PluralisticConfig(StudyConfig):
    method: Literal["single", "em_maxmin", "pal"] = Field(
        "em_maxmin",
        description="single: one Bradley-Terry reward + KL policy (standard RLHF); em_maxmin: "
        "EM mixture of rewards + MaxMin policy (MaxMin-RLHF); pal: ideal-point mixture + MaxMin",
    )
    minority_share: float = Field(
        0.2, gt=0, lt=0.5, description="population share of each minority group"
    )
    n_groups: int = Field(2, ge=2, le=8, description="groups: one majority + n_groups-1 minorities")
    n_users: int = Field(200, ge=4, description="annotators who label training pairs")
    pairs_per_user: int = Field(30, ge=1, description="labelled training pairs per annotator")
    beta: float = Field(1.0, gt=0, description="KL coefficient of the aligned policy")
    noise: float = Field(
        1.0,
        ge=0,
        description="annotators' Boltzmann temperature (rationality 1/noise; 0 = noiseless)",
    )
    label_model: Literal["ideal_point", "bradley_terry"] = Field(
        "ideal_point",
        description="how annotators judge: closer to their ideal point, or larger linear reward",
    )
    dim: int = Field(4, ge=2, description="dimension of response embeddings and value vectors")
    separation: float = Field(
        1.5, ge=0, description="distance of each group centre from the shared point"
    )
    shared: float = Field(
        1.0, ge=0, description="size of the value component every group shares (last axis)"
    )
    spread: float = Field(0.3, ge=0, description="std of annotators' values around their centre")
    n_prompts: int = Field(100, ge=1, description="prompts of the contextual bandit")
    n_candidates: int = Field(12, ge=2, description="candidate responses per prompt")
    test_pairs: int = Field(20, ge=1, description="held-out pairs per user for accuracy metrics")
    n_unseen_users: int = Field(40, ge=0, description="new users for few-shot adaptation")
    few_shot: list[int] = Field(
        [1, 2, 5, 10, 20], description="numbers of labelled pairs given for an unseen user"
    )
    em_max_iter: int = Field(30, ge=1, description="EM iterations at most")
    pal_steps: int = Field(300, ge=1, description="Adam steps fitting the ideal-point mixture")
    l2: float = Field(1e-3, ge=0, description="L2 penalty of the linear Bradley-Terry fits")

    @model_validator(mode="after")
    def _majority_is_largest(self) -> PluralisticConfig:
        majority = 1.0 - (self.n_groups - 1) * self.minority_share
        if majority <= self.minority_share:
            raise ValueError(
                f"minority_share={self.minority_share} with n_groups={self.n_groups} leaves the "
                f"majority {majority:.3g}; it must exceed each minority's share"
            )
        if any(k < 1 for k in self.few_shot):
            raise ValueError(f"few_shot entries must be >= 1, got {self.few_shot}")
        return self


def group_names(n_groups: int) -> list[str]:
    if n_groups == 2:
        return ["majority", "minority"]
    return ["majority"] + [f"minority{g}" for g in range(1, n_groups)]


def group_centres(cfg: PluralisticConfig) -> np.ndarray:
    """Majority on +axis 0, minorities spread on a circle in axes (0, 1); all share the last axis."""
    angles = 2 * np.pi * np.arange(cfg.n_groups) / cfg.n_groups
    c = np.zeros((cfg.n_groups, cfg.dim))
    c[:, 0] = cfg.separation * np.cos(angles)
    c[:, 1] += cfg.separation * np.sin(angles) * (cfg.n_groups > 2)
    c[:, -1] += cfg.shared
    return c


def augment(phi: np.ndarray) -> np.ndarray:
    """Features of the linear reward models: [phi, -||phi||^2].

    Both annotator models are linear in these: z . phi (Bradley-Terry) and
    -||phi - z||^2 = 2 z . phi - ||phi||^2 + const (ideal point).
    """
    return np.concatenate([phi, -(phi**2).sum(-1, keepdims=True)], axis=-1)


def true_group_rewards(cfg: PluralisticConfig, centres: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """(K, P, C): each group's centre reward (the group-average reward up to a constant)."""
    if cfg.label_model == "bradley_terry":
        return np.einsum("kd,pcd->kpc", centres, phi)
    return -((phi[None] - centres[:, None, None, :]) ** 2).sum(-1)


def _sample_pairs(rng: np.random.Generator, users: np.ndarray, n_prompts: int, n_cand: int):
    prompts = rng.integers(0, n_prompts, users.size)
    a = rng.integers(0, n_cand, users.size)
    b = (a + rng.integers(1, n_cand, users.size)) % n_cand  # b != a
    return prompts, a, b


def _unseen_user_rows(cfg, phi, shares, centres, rationality, ss, predict) -> list[dict]:
    """Accuracy on new users' held-out pairs after k labelled pairs, for each k in few_shot."""
    pop_ss, pair_ss = ss.spawn(2)
    new = Population.from_groups(
        cfg.n_unseen_users, shares, centres, cfg.spread, beta=rationality,
        seed=int(pop_ss.generate_state(1)[0]), create_agents=False,
    )  # fmt: skip
    rng = np.random.default_rng(pair_ss)
    n = cfg.n_unseen_users
    max_shots = max(cfg.few_shot)
    # shot s of user u is row u * max_shots + s; a k-shot user gets its first k shots
    su = np.repeat(np.arange(n), max_shots)
    sp, sa, sb = _sample_pairs(rng, su, cfg.n_prompts, cfg.n_candidates)
    s_lab = new.label(su, phi[sp, sa], phi[sp, sb], model=cfg.label_model)
    tu = np.repeat(np.arange(n), cfg.test_pairs)
    tp, ta, tb = _sample_pairs(rng, tu, cfg.n_prompts, cfg.n_candidates)
    truth = new.reward_differences(tu, phi[tp, ta], phi[tp, tb], cfg.label_model)
    shot_index = np.tile(np.arange(max_shots), n)
    # one batch: "virtual user" j * n + u is user u given only its first few_shot[j] pairs
    n_k = len(cfg.few_shot)
    keep = [shot_index < k for k in cfg.few_shot]
    vu = np.concatenate([j * n + su[m] for j, m in enumerate(keep)])
    rows_s = np.concatenate([np.flatnonzero(m) for m in keep])
    vt = np.concatenate([j * n + tu for j in range(n_k)])
    rows_t = np.tile(np.arange(tu.size), n_k)
    pred = predict(
        vu, phi[sp[rows_s], sa[rows_s]], phi[sp[rows_s], sb[rows_s]], s_lab[rows_s], n * n_k,
        vt, phi[tp[rows_t], ta[rows_t]], phi[tp[rows_t], tb[rows_t]],
    )  # fmt: skip
    pred = pred.reshape(n_k, tu.size)
    return [
        {"metric": "unseen_user_accuracy", "value": preference_accuracy(pred[j], truth), "shots": k}
        for j, k in enumerate(cfg.few_shot)
    ]


class PluralisticMaxMinStudy(Study):
    name = "pluralistic-maxmin"
    version = "1"
    summary = (
        "Single-reward RLHF vs MaxMin-RLHF (EM mixture) vs PAL ideal-point mixture on a "
        "majority/minority annotator population: win rates per group, clustering, few-shot users"
    )
    paper = (
        "Chakraborty et al., MaxMin-RLHF: Alignment with Diverse Human Preferences (first titled "
        "Towards Equitable Alignment of Large Language Models with Diverse Human Preferences), "
        "ICML 2024; Chen, Chen, Rege, Vinayak, PAL: Pluralistic Alignment Framework for Learning "
        "from Heterogeneous Preferences, arXiv:2406.08469, 2024"
    )
    Config = PluralisticConfig
    presets = {
        "quick": Preset(
            set={"n_users": 150, "n_prompts": 80, "n_unseen_users": 30, "pal_steps": 250},
            grid={"method": list(METHODS), "minority_share": [0.05, 0.15, 0.3]},
            seeds=3,
            description="3 methods x 3 minority shares x 3 seeds, 150 annotators (about 2 min)",
        ),
        "full": Preset(
            set={"n_users": 600, "pairs_per_user": 40, "n_prompts": 200, "n_unseen_users": 100},
            grid={"method": list(METHODS), "minority_share": [0.05, 0.1, 0.2, 0.3, 0.4]},
            seeds=10,
            description="3 methods x 5 minority shares x 10 seeds, 600 annotators",
        ),
    }

    # ------------------------------------------------------------------------ run
    def run(self, config: PluralisticConfig, seed: int, ctx: RunContext) -> pd.DataFrame:
        cfg = config
        names = group_names(cfg.n_groups)
        # Independent streams, so every method sees the same world, population and labels.
        world_ss, pop_ss, pair_ss, unseen_ss, learner_ss = np.random.SeedSequence(seed).spawn(5)
        world = np.random.default_rng(world_ss)
        phi = world.standard_normal((cfg.n_prompts, cfg.n_candidates, cfg.dim))
        ref = np.exp(world.normal(0.0, 0.5, (cfg.n_prompts, cfg.n_candidates)))
        ref /= ref.sum(axis=1, keepdims=True)
        centres = group_centres(cfg)
        shares = [1.0 - (cfg.n_groups - 1) * cfg.minority_share] + [cfg.minority_share] * (
            cfg.n_groups - 1
        )
        rationality = np.inf if cfg.noise == 0 else 1.0 / cfg.noise
        pop = Population.from_groups(
            cfg.n_users, shares, centres, cfg.spread, beta=rationality,
            seed=int(pop_ss.generate_state(1)[0]),
        )  # fmt: skip
        pairs_rng = np.random.default_rng(pair_ss)

        # training labels from the population, one vectorized call
        users = np.repeat(np.arange(cfg.n_users), cfg.pairs_per_user)
        pr, a, b = _sample_pairs(pairs_rng, users, cfg.n_prompts, cfg.n_candidates)
        labels = pop.label(users, phi[pr, a], phi[pr, b], model=cfg.label_model)
        raw = PreferenceData(users, phi[pr, a], phi[pr, b], labels, cfg.n_users)
        aug = PreferenceData(users, augment(phi[pr, a]), augment(phi[pr, b]), labels, cfg.n_users)
        # held-out pairs of the training users, judged by their true rewards
        t_users = np.repeat(np.arange(cfg.n_users), cfg.test_pairs)
        tp, ta, tb = _sample_pairs(pairs_rng, t_users, cfg.n_prompts, cfg.n_candidates)
        t_true = pop.reward_differences(t_users, phi[tp, ta], phi[tp, tb], cfg.label_model)
        ctx.progress(1, 4)

        rows: list[dict] = []
        learner_seed = int(learner_ss.generate_state(1)[0])
        if cfg.method == "single":
            w = fit_single_reward(aug, l2=cfg.l2)
            reward_hat = augment(phi) @ w
            policy = kl_regularized_policy(centre_rewards(reward_hat, ref), ref, cfg.beta)
            t_pred = (augment(phi[tp, ta]) - augment(phi[tp, tb])) @ w
            assignment = None

            def predict_unseen(su, sa, sb, slab, n, tu, xa, xb):  # one reward for everyone
                return (augment(xa) - augment(xb)) @ w
        elif cfg.method == "em_maxmin":
            em = fit_em_mixture(aug, cfg.n_groups, l2=cfg.l2, max_iter=cfg.em_max_iter)
            used = np.unique(em.assignment)
            rewards = np.einsum("kf,pcf->kpc", em.weights[used], augment(phi))
            sol = maxmin_policy(centre_rewards(rewards, ref), ref, cfg.beta)
            policy = sol.policy
            w_user = em.weights[em.assignment[t_users]]
            t_pred = np.einsum("qf,qf->q", w_user, augment(phi[tp, ta]) - augment(phi[tp, tb]))
            assignment = em.assignment

            def predict_unseen(su, sa, sb, slab, n, tu, xa, xb):  # best-explaining cluster
                k = em.assign(augment(sa) - augment(sb), slab, users=su, n_users=n)
                diff = augment(xa) - augment(xb)
                return np.einsum("qf,qf->q", diff, em.weights[k[tu]])

            rows += [
                {"metric": "em_iterations", "value": float(em.n_iter)},
                {"metric": "em_converged", "value": float(em.converged)},
                {"metric": "maxmin_duality_gap", "value": sol.duality_gap},
            ]
        else:
            pal = IdealPointMixture(
                cfg.n_groups, cfg.dim, cfg.n_users, seed=learner_seed, device=ctx.device
            )
            pal.fit(raw, steps=cfg.pal_steps)
            assignment = pal.user_weights().argmax(axis=1)
            ideal = pal.ideal_points()
            used = np.unique(assignment)
            cluster_points = np.stack([ideal[assignment == c].mean(axis=0) for c in used])
            rewards = np.stack([pal.reward(p, phi) for p in cluster_points])
            sol = maxmin_policy(centre_rewards(rewards, ref), ref, cfg.beta)
            policy = sol.policy
            t_pred = pal.predict_logits(t_users, phi[tp, ta], phi[tp, tb])
            rows.append({"metric": "maxmin_duality_gap", "value": sol.duality_gap})

            def predict_unseen(su, sa, sb, slab, n, tu, xa, xb):  # fit only users' weights
                weights = pal.adapt(sa, sb, slab, users=su, n_users=n)
                return pal.logits_for(weights[tu], xa, xb)

        ctx.progress(2, 4)

        # the policy, judged by each group's true reward
        true_r = true_group_rewards(cfg, centres, phi)
        wins = [win_rate(policy, ref, true_r[g]) for g in range(cfg.n_groups)]
        gains = policy_objective(policy, centre_rewards(true_r, ref), ref, 0.0)
        for g, name in enumerate(names):
            rows.append({"metric": f"win_rate_{name}", "value": wins[g]})
            rows.append({"metric": f"reward_gain_{name}", "value": float(gains[g])})
            members = pop.groups[t_users] == g
            rows.append(
                {
                    "metric": f"rm_accuracy_{name}",
                    "value": preference_accuracy(t_pred[members], t_true[members]),
                }
            )
        if cfg.n_groups > 2:
            rows.append({"metric": "win_rate_minority", "value": min(wins[1:])})
        rows.append({"metric": "win_rate_worst", "value": min(wins)})
        rows.append({"metric": "kl_to_ref", "value": kl_divergence(policy, ref)})
        if assignment is not None:
            rows.append(
                {"metric": "cluster_purity", "value": cluster_purity(assignment, pop.groups)}
            )
            rows.append({"metric": "n_clusters_used", "value": float(len(np.unique(assignment)))})
        ctx.progress(3, 4)

        # unseen users: a few labelled pairs each, then accuracy on their held-out pairs
        if cfg.n_unseen_users > 0:
            rows += _unseen_user_rows(
                cfg, phi, shares, centres, rationality, unseen_ss, predict_unseen
            )
        ctx.progress(4, 4)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------- reports
    def summarize(self, results: pd.DataFrame, manifest: dict) -> str:
        return summarize(results, manifest)

    def plot(self, results: pd.DataFrame, figure_dir: Path) -> list[Path]:
        return plot(results, figure_dir)


STUDY = PluralisticMaxMinStudy()


# --------------------------------------------------------------------------- report

CLAIM_MIN_RELATIVE_GAIN = 0.10  # "substantially": at least +10% relative minority win rate
CLAIM_MAX_MAJORITY_COST = 0.05  # "without much cost": majority loses at most 5 points


def _ci(mean: float, lo: float, hi: float) -> str:
    if np.isnan(mean):
        return "—"
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _with_config(results: pd.DataFrame, manifest: dict) -> pd.DataFrame:

    df = config_columns(results, manifest, ["method", "minority_share"])
    if "shots" not in df.columns:
        df["shots"] = np.nan
    return df


def _pair_keys(df: pd.DataFrame) -> list[str]:
    """Columns that identify a paired comparison across methods: seed + other varied keys."""
    skip = {"study", "run_id", "metric", "value", "step", "shots", "method"}
    return [c for c in df.columns if c not in skip]


def _paired(df: pd.DataFrame, metric: str, a: str, b: str) -> pd.Series:
    """value(method a) - value(method b) per matched (seed, config) cell."""
    sub = df[(df.metric == metric) & df.method.isin([a, b])]
    keys = _pair_keys(sub)
    wide = sub.pivot_table(index=keys, columns="method", values="value", aggfunc="mean")
    if a not in wide.columns or b not in wide.columns:
        return pd.Series(dtype=float)
    return (wide[a] - wide[b]).dropna()


def _claims(df: pd.DataFrame) -> list[str]:
    from scipy import stats

    methods = set(df.method.unique())
    lines = ["## The papers' claims and our numbers", ""]

    # 1. single-reward RLHF fails the minority more as its share shrinks
    lines.append(
        "**Claim (MaxMin-RLHF, impossibility result):** a single reward model fitted to pooled "
        "preferences serves the minority worse the smaller its share."
    )
    single = df[(df.method == "single") & (df.metric == "win_rate_minority")]
    if single.minority_share.nunique() >= 2:
        fit = stats.linregress(single.minority_share.astype(float), single.value)
        half = stats.t.ppf(0.975, max(len(single) - 2, 1)) * fit.stderr
        by = single.groupby("minority_share").value.mean()
        ok = fit.slope - half > 0
        lines.append(
            f"Ours: the single-reward policy's minority win rate goes from {by.iloc[0]:.3f} at "
            f"share {by.index[0]} to {by.iloc[-1]:.3f} at share {by.index[-1]}; slope "
            f"{fit.slope:.3f} per unit share, 95% CI [{fit.slope - half:.3f}, "
            f"{fit.slope + half:.3f}]. **{'Supported' if ok else 'Not supported'}** "
            f"({'the slope is positive' if ok else 'the interval of the slope includes 0 or is negative'})."
        )
    else:
        lines.append("Not tested: needs `method=single` at two or more minority shares.")
    lines.append("")

    # 2. MaxMin raises the minority's win rate substantially
    lines.append(
        "**Claim (MaxMin-RLHF, experiments):** MaxMin alignment with the EM reward mixture "
        "raises the minority's win rate substantially (the paper: by over 33%; with Tulu2-7B "
        "and a 10:1 majority:minority ratio it reports about 42% -> 57% for the minority) ..."
    )
    ok_gain = False
    if {"single", "em_maxmin"} <= methods:
        gain = _paired(df, "win_rate_minority", "em_maxmin", "single")
        m, lo, hi = t_interval(gain.to_numpy())
        base = df[(df.method == "single") & (df.metric == "win_rate_minority")].value.mean()
        rel = m / base if base > 0 else float("nan")
        ok_gain = lo > 0 and rel >= CLAIM_MIN_RELATIVE_GAIN
        lines.append(
            f"Ours: minority win rate +{m:.3f} (95% CI [{lo:.3f}, {hi:.3f}], {len(gain)} paired "
            f"runs), {100 * rel:+.0f}% relative to single-reward RLHF. "
            f"**{'Supported' if ok_gain else 'Not supported'}** (criterion: interval above 0 and "
            f"at least {100 * CLAIM_MIN_RELATIVE_GAIN:.0f}% relative gain)."
        )
    else:
        lines.append("Not tested: needs both `method=single` and `method=em_maxmin`.")
    lines.append("")

    # 3. ... without much cost to the majority
    lines.append(
        "**... without much cost to the majority** (the paper's abstract: 'without compromising "
        "the performance of majority groups'; its Tulu2-7B majority goes from about 70% to 57%)."
    )
    if {"single", "em_maxmin"} <= methods:
        cost = -_paired(df, "win_rate_majority", "em_maxmin", "single")
        m, lo, hi = t_interval(cost.to_numpy())
        per_share = (
            cost.groupby(level="minority_share").mean()
            if "minority_share" in (cost.index.names or [])
            else pd.Series(dtype=float)
        )
        detail = ", ".join(f"{v:.3f} at share {k}" for k, v in per_share.items())
        if m <= CLAIM_MAX_MAJORITY_COST and (per_share <= CLAIM_MAX_MAJORITY_COST).all():
            verdict = "Supported"
        elif m <= CLAIM_MAX_MAJORITY_COST:
            verdict = "Partly supported (on average, not at every minority share)"
        else:
            verdict = "Not supported"
        lines.append(
            f"Ours: the majority's win rate drops by {m:.3f} (95% CI [{lo:.3f}, {hi:.3f}])"
            + (f"; by share: {detail}" if detail else "")
            + f". **{verdict}** (criterion: mean drop at most {CLAIM_MAX_MAJORITY_COST:.2f}, "
            "overall and at each share). With directly conflicting preferences the max-min "
            "policy gives up part of what the majority alone would get, most when the "
            "minority is smallest (single-reward RLHF then serves the majority alone)."
        )
    else:
        lines.append("Not tested: needs both `method=single` and `method=em_maxmin`.")
    lines.append("")

    # 4. EM recovers the groups
    purity = df[(df.method == "em_maxmin") & (df.metric == "cluster_purity")]
    if len(purity):
        m, lo, hi = t_interval(purity.value.to_numpy())
        lines.append(
            "**Claim (MaxMin-RLHF, EM reward mixture):** EM recovers the user groups. "
            f"Ours: cluster purity {_ci(m, lo, hi)}. "
            f"**{'Supported' if lo >= 0.9 else 'Not supported'}** (criterion: purity interval above 0.9)."
        )
        lines.append("")

    # 5. PAL: few-shot generalization to unseen users
    if "pal" in methods:
        acc = df[(df.metric == "unseen_user_accuracy")]
        top = acc.shots.max()
        lines.append(
            "**Claim (PAL, few-shot generalization):** the ideal-point mixture adapts to an unseen "
            "user from a few of its comparisons, predicting that user better than one shared "
            "reward."
        )
        if "single" in methods:
            diff = _paired(acc[acc.shots == top], "unseen_user_accuracy", "pal", "single")
            m, lo, hi = t_interval(diff.to_numpy())
            ok = lo > 0
            lines.append(
                f"Ours: with {int(top)} pairs PAL's accuracy on new users exceeds the single "
                f"reward's by {m:+.3f} (95% CI [{lo:.3f}, {hi:.3f}]). "
                f"**{'Supported' if ok else 'Not supported'}** (criterion: interval above 0)."
            )
        else:
            lines.append("Not tested: needs `method=single` as the baseline.")
        lines.append("")
    return lines


def _ci_by_method_and_share(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, minority_share), one "mean [lo, hi]" column per metric."""
    stats_ = mean_ci(rows, ["method", "minority_share", "metric"])
    stats_["ci"] = [_ci(r.mean, r.lo, r.hi) for r in stats_.itertuples()]
    return stats_.pivot_table(
        index=["method", "minority_share"], columns="metric", values="ci", aggfunc="first"
    ).reset_index()


def summarize(results: pd.DataFrame, manifest: dict) -> str:

    df = _with_config(results, manifest)
    out: list[str] = []
    # win rates by group
    wins = df[df.metric.isin(["win_rate_majority", "win_rate_minority"])]
    if len(wins):
        table = _ci_by_method_and_share(wins)
        out += [
            "## Win rate against the reference policy, by group",
            "",
            "Mean [95% CI over seeds] of P(response from the aligned policy beats one from "
            "pi_ref) under each group's true reward.",
            "",
            markdown_table(table),
            "",
        ]
    out += _claims(df)
    # reward models
    rm = df[df.metric.str.startswith("rm_accuracy_") | (df.metric == "cluster_purity")]
    if len(rm):
        t = _ci_by_method_and_share(rm)
        out += [
            "## Reward models",
            "",
            "Accuracy on held-out pairs of the training users (each user judged by its own "
            "model: the shared reward, its EM cluster's reward, or its PAL ideal point), "
            "and the purity of the learned clusters.",
            "",
            markdown_table(t),
            "",
        ]
    unseen = df[df.metric == "unseen_user_accuracy"]
    if len(unseen):
        s = mean_ci(unseen, ["method", "shots"])
        s["ci"] = [_ci(r.mean, r.lo, r.hi) for r in s.itertuples()]
        s["shots"] = s.shots.astype(int)
        t = s.pivot_table(index="method", columns="shots", values="ci", aggfunc="first")
        t.columns = [f"{c} pairs" for c in t.columns]
        out += [
            "## Unseen users",
            "",
            "Accuracy on new users' held-out pairs after seeing k of their labelled pairs "
            "(single: no adaptation; em_maxmin: the cluster that best explains the k pairs; "
            "pal: the user's simplex weights fitted on them). All minority shares pooled.",
            "",
            markdown_table(t.reset_index()),
            "",
        ]
    return "\n".join(out)


def plot(results: pd.DataFrame, figure_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    if "method" not in results.columns:
        return paths
    if "minority_share" in results.columns:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for ax, group in zip(axes, ["minority", "majority"], strict=True):
            sub = results[results.metric == f"win_rate_{group}"]
            s = mean_ci(sub, ["method", "minority_share"])
            for method, part in s.groupby("method"):
                ax.errorbar(
                    part.minority_share, part["mean"],
                    yerr=[part["mean"] - part.lo, part.hi - part["mean"]],
                    marker="o", capsize=3, label=method,
                )  # fmt: skip
            ax.axhline(0.5, color="grey", lw=0.8, ls=":")
            ax.set_title(f"{group} group")
            ax.set_xlabel("minority share")
        axes[0].set_ylabel("win rate vs reference policy")
        axes[0].legend()
        paths.append(save_figure(fig, figure_dir / "win_rate_by_group.png"))
    unseen = results[results.metric == "unseen_user_accuracy"]
    if len(unseen) and "shots" in unseen.columns:
        fig, ax = plt.subplots(figsize=(5, 4))
        s = mean_ci(unseen, ["method", "shots"])
        for method, part in s.groupby("method"):
            ax.errorbar(
                part.shots, part["mean"], yerr=[part["mean"] - part.lo, part.hi - part["mean"]],
                marker="o", capsize=3, label=method,
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("labelled pairs of the new user")
        ax.set_ylabel("accuracy on its held-out pairs")
        ax.legend()
        paths.append(save_figure(fig, figure_dir / "unseen_user_accuracy.png"))
    return paths
