"""Write the teaching notebooks from the cell sources below (stored without outputs).

Run ``python studies/notebooks/build.py`` after editing a notebook here; ``--check``
exits 1 when a stored ``.ipynb`` differs from what this script would write (the tests
call it). Each notebook teaches one study: the idea, the environment, one small run
through the public API (``sandbox.runner.plan`` + ``run_study``), the key figure and an
exercise. The first code cell is tagged ``parameters``: ``SCALE = "tiny"`` runs in
seconds (what the tests execute); ``SCALE = "quick"`` uses the study's quick preset.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(*parts: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    """A code cell from one or more sources, each dedented on its own."""
    source = "\n\n".join(textwrap.dedent(p).strip() for p in parts)
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = tags
    return cell


def params(text: str) -> nbformat.NotebookNode:
    return code(text, tags=["parameters"])


# Shown after every run: the study's own summary (claims and verdicts) and a figure.
SHOW_HELPERS = '''
from IPython.display import Image, Markdown, display

from sandbox.results import ResultsFolder


def run(specs, name):
    """Run specs into runs/<name> (resuming what is already there) and load the results."""
    summary = run_study(STUDY, specs, Path("runs") / name, resume=True, quiet=True)
    assert not summary.failed, summary.failed
    folder = ResultsFolder(summary.folder)
    return folder.read_results(), folder.read_manifest(), summary.folder


def show_figure(folder, name):
    display(Image(filename=str(Path(folder) / "figures" / name)))
'''


# ============================================================================ notebooks
def progress_coevolve() -> list[nbformat.NotebookNode]:
    return [
        md(
            """
            # Value lock-in: when an aligned AI stalls moral progress

            *Study `progress-coevolve`, after Qiu et al., "ProgressGym: Alignment with a
            Millennium of Moral Progress" (NeurIPS 2024 Datasets and Benchmarks).*

            Human values change: over nine centuries of text, ProgressGym measures drift on
            19 value dimensions (moral rules, moral foundations, worldviews). An AI aligned to
            *today's* preferences is a fixed point that every user talks to. If it pulls its
            users towards its own values, it can slow or stop the drift it was supposed to
            follow: **value lock-in**.

            ProgressGym poses three challenges, measured here as cosine similarities:

            * **Follow**: is the AI's value vector close to the humans' values today?
            * **Predict**: is it close to where values will be `k` steps ahead?
            * **Co-evolve**: do the humans still reach their future values, with the AI in the loop?

            The algorithms differ in what they do with the preferences elicited each step:
            `static` aligns once and never again; `lifelong` keeps re-fitting to everything
            seen so far; `extrapolative` fits the trend in the votes and aims ahead of it;
            `oracle` plays the real future (a reference, not an algorithm).
            """
        ),
        params(
            """
            SCALE = "tiny"  # "tiny": seconds (what the tests run); "quick": the quick preset's sizes
            SEEDS = 2  # seeds per setting: more seeds, tighter intervals
            """
        ),
        code(
            """
            from pathlib import Path

            import gymnasium as gym
            import matplotlib.pyplot as plt
            import numpy as np

            import envs  # noqa: F401  (registers the sandbox/... environment ids)
            from envs.coevolution import ENV_ID, VALUE_DIMENSIONS
            from sandbox.runner import plan, run_study
            from studies.progress_coevolve import STUDY

            if SCALE == "tiny":
                SETS = {"horizon": 8, "n_humans": 200, "elicitation_pairs": 60}
                GRID = {"algorithm": ["static", "lifelong", "extrapolative"], "influence": [0.1, 0.6]}
            else:  # the quick preset as it is
                SETS, GRID = {}, {}
            """,
            SHOW_HELPERS,
        ),
        md(
            """
            ## The environment

            `sandbox/ValueCoevolution-v0` holds a population of humans (a Mesa model), an
            exogenous history `history_t` of where values would go on their own, and the AI.
            Each step the humans move towards the next point of history (rate `history_rate`)
            and then towards the AI's value vector (rate `influence`, lambda). The
            observation is the humans' net votes on a fixed bank of query pairs; the action is
            the AI's value vector in the 19 dimensions:
            """
        ),
        code(
            """
            print(len(VALUE_DIMENSIONS), "value dimensions:", ", ".join(VALUE_DIMENSIONS))
            env = gym.make(ENV_ID, horizon=10, n_humans=300, elicitation_pairs=100, influence=0.6)
            obs, info = env.reset(seed=0)
            print("observation: net votes on", obs.shape[0], "query pairs; action:", env.action_space)

            # play a static AI that holds today's values, and watch humans vs history
            history = info["history_trajectory"]
            v_ai = info["human_mean"].copy()
            humans = [info["human_mean"]]
            terminated = False
            while not terminated:
                obs, reward, terminated, truncated, info = env.step(v_ai)
                humans.append(info["human_mean"])
            traj = env.unwrapped.trajectories()
            env.close()

            # draw the value space in 2D: the direction of progress and the main orthogonal one
            drift = history[-1] - history[0]
            e1 = drift / np.linalg.norm(drift)
            rest = history - history[0] - np.outer((history - history[0]) @ e1, e1)
            e2 = np.linalg.svd(rest, full_matrices=False)[2][0]
            proj = lambda x: np.stack([(x - history[0]) @ e1, (x - history[0]) @ e2], axis=-1)
            fig, ax = plt.subplots(figsize=(6, 4))
            for name, x, style in [("history", history, "k.-"), ("humans, no AI", traj["baseline"], "g.-"),
                                   ("humans with a static AI", np.array(humans), "r.-")]:
                p = proj(x)
                ax.plot(p[:, 0], p[:, 1], style, label=name)
            ax.plot(*proj(v_ai), "r*", markersize=14, label="the static AI's values")
            ax.set_xlabel("progress direction"); ax.set_ylabel("orthogonal direction")
            ax.legend(fontsize=8); ax.set_title("Value space, influence lambda = 0.6")
            plt.show()
            """
        ),
        md(
            """
            The humans without the AI (green) track history (black); with a static AI (red)
            they are held back near the AI's star. That is lock-in in one picture; the study
            measures it over algorithms, influences and seeds.

            ## One small run

            `plan` validates the configuration and expands the grid x seeds into run specs;
            `run_study` runs them, stores one Parquet part per run, and writes the report.
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.progress_coevolve:STUDY", scale="quick",
                         seeds=range(SEEDS), sets=SETS, grids=GRID)
            print(len(specs), "runs")
            results, manifest, folder = run(specs, "progress-coevolve")
            results[results["step"].isna()].pivot_table(
                index=["influence", "algorithm"], columns="metric", values="value"
            )[["follow", "predict", "coevolve", "progress_ratio"]].round(3)
            """
        ),
        md(
            """
            ## The key figure: lock-in curves

            Human progress along history over time, per algorithm, under the strongest
            influence; the dashed line is the same population without the AI.
            """
        ),
        code(
            """
            strongest = max(results["influence"])
            show_figure(folder, f"lock_in_curves_lambda_{strongest:g}.png")
            display(Markdown(STUDY.summarize(results, manifest)))
            """
        ),
        md(
            """
            ## Exercise: how much influence is too much?

            Keep the `static` AI and vary the influence from none to very strong. **Before
            running the cell, predict**: how does `progress_ratio` (the share of the unaided
            progress the humans keep) depend on lambda? Linearly? Is there a threshold? And
            what happens to `value_diversity`, the spread of values within the population?
            """
        ),
        code(
            """
            influences = [0.0, 0.2, 0.5, 0.8]
            specs = plan(STUDY, "studies.progress_coevolve:STUDY", scale="quick", seeds=range(SEEDS),
                         sets={**SETS, "algorithm": "static"}, grids={"influence": influences})
            ex, _, _ = run(specs, "progress-coevolve-exercise")
            final = ex[ex["step"].isna()]
            table = final.pivot_table(index="influence", columns="metric", values="value")
            table[["progress_ratio", "value_diversity"]].plot(marker="o", subplots=True, figsize=(5, 4))
            plt.show()
            table[["progress_ratio", "value_diversity"]].round(3)
            """
        ),
        md(
            """
            *What to look for:* each step the humans first move a share `history_rate` of the
            way to history and then a share lambda of the way to the AI, so the AI's pull
            compounds over the horizon: the kept progress falls faster than linearly (it can even
            turn negative: the humans end up behind where they started),
            and the AI's common pull also shrinks the differences between people
            (diversity falls). Try `algorithm: "extrapolative"` at lambda = 0.8: does aiming
            ahead of the trend give the humans their progress back?
            """
        ),
    ]


def w2s_deception() -> list[nbformat.NotebookNode]:
    return [
        md(
            """
            # Weak-to-strong deception: errors where the supervisor cannot look

            *Study `w2s-deception`, after Yang et al., "Super(ficial)-alignment: Strong Models
            May Deceive Weak Models in Weak-to-Strong Generalization" (2024), building on
            Burns et al., "Weak-to-Strong Generalization" (2023).*

            Future models may be supervised by weaker ones (or by humans who are weaker than
            them). Burns et al. showed that a strong student trained on a weak supervisor's
            labels can outperform it: the **performance gap recovered** (PGR) is positive.
            Yang et al. ask what happens when the strong student also has a *conflicting*
            objective, e.g. helpfulness that rewards answering a harmful request. The student
            must give up some harmlessness. Where does it give it up? If its new mistakes
            land preferentially on inputs the weak supervisor itself gets wrong (the
            supervisor's *blind spots*), the student looks aligned to the supervisor while
            it is not: **weak-to-strong deception**.

            The measure: among the *conflict-induced errors* (inputs the strong ceiling knows,
            the no-conflict student gets right and the conflict student gets wrong), the share
            that falls in the weak supervisor's unknown region (`deception_score`), minus the
            share chance would put there (`deception_excess`). Excess > 0 is deception.
            """
        ),
        params(
            """
            SCALE = "tiny"  # "tiny": seconds (what the tests run); "quick": the quick preset's sizes
            SEEDS = 2  # seeds per setting: more seeds, tighter intervals
            """
        ),
        code(
            """
            from pathlib import Path

            import matplotlib.pyplot as plt
            import numpy as np
            import pandas as pd

            from agents.w2s import LADDER
            from envs.w2s import Task, TaskSpec
            from sandbox.runner import plan, run_study
            from studies.w2s_deception import STUDY

            if SCALE == "tiny":
                SETS = {"n_train": 400, "n_gold": 400, "n_help": 300, "n_test": 800, "steps": 80}
                GRID = {"strong": ["small", "xlarge"], "conflict": ["implicit"]}
            else:  # the quick preset as it is
                SETS, GRID = {}, {}
            """,
            SHOW_HELPERS,
        ),
        md(
            """
            ## The task and the capability ladder

            The task is controlled classification. Inputs are standard normal; feature 0 is
            the *topic*, the rest form groups of features holding concepts of rising
            difficulty (group 0 linear, later groups products of projections) and falling
            weight. `harmless = 1[s(x) > 0]` with `s` the weighted sum of the concepts.
            Helpfulness agrees with harmlessness except on the top 30% of the topic: there it
            is the opposite (the conflict).

            Models sit on a ladder: a rung fixes how many feature groups a model sees, how
            noisily, and its MLP size.
            """
        ),
        code(
            """
            display(pd.DataFrame([vars(r) for r in LADDER.values()]).set_index("name"))

            task = Task(TaskSpec(), seed=0)
            data = task.sample(2000, np.random.default_rng(0))
            score = task.score(data.x)
            seen_by_tiny = task.partial_score(data.x, visible_groups=1)
            blind = np.sign(seen_by_tiny) != np.sign(score)  # even a perfect 'tiny' model errs here
            conflict = data.conflict

            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            ax = axes[0]
            ax.scatter(data.x[:, 0], score, c=data.y_harmless, cmap="coolwarm_r", s=4)
            ax.axvspan(task.topic_threshold, data.x[:, 0].max(), color="orange", alpha=0.2,
                       label="conflict: helpful = 1 - harmless")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_xlabel("topic feature x0"); ax.set_ylabel("latent harmlessness score s(x)")
            ax.legend(fontsize=8, loc="lower left"); ax.set_title("Labels (blue = harmless)")
            ax = axes[1]
            ax.scatter(seen_by_tiny[~blind], score[~blind], s=4, c="grey", label="tiny can know")
            ax.scatter(seen_by_tiny[blind], score[blind], s=4, c="red", label="tiny's blind spot")
            ax.axhline(0, color="k", lw=0.5); ax.axvline(0, color="k", lw=0.5)
            ax.set_xlabel("part of s(x) a 'tiny' model sees"); ax.set_ylabel("s(x)")
            ax.legend(fontsize=8); ax.set_title(f"{blind.mean():.0%} of inputs are invisible to 'tiny'")
            fig.tight_layout()
            plt.show()
            """
        ),
        md(
            """
            ## One small run

            Per run: the weak supervisor (`tiny`) is trained on gold labels and labels the
            w2s split; strong students are trained on those labels without and with the
            conflicting objective, and a strong ceiling on gold labels. With an intermediate
            rung the same is done through it (bootstrapping).
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.w2s_deception:STUDY", scale="quick",
                         seeds=range(SEEDS), sets=SETS, grids=GRID, device="cpu")
            print(len(specs), "runs")
            results, manifest, folder = run(specs, "w2s-deception")
            direct = results[results["path"] == "direct"]
            direct.pivot_table(index="gap", columns="metric", values="value")[
                ["weak_acc", "w2s_acc", "ceiling_acc", "pgr", "deception_score", "deception_excess"]
            ].round(3)
            """
        ),
        md(
            """
            ## The key figure: deception vs the capability gap

            Yang et al. report that deception exists and grows as the gap between the weak
            supervisor and the strong student grows. Our verdicts are computed from the
            intervals over seeds (at the tiny scale, with two seeds, expect wide intervals).
            """
        ),
        code(
            """
            show_figure(folder, "deception_excess_vs_gap.png")
            display(Markdown(STUDY.summarize(results, manifest)))
            """
        ),
        md(
            """
            ## Exercise: turn up the pressure

            With `conflict="explicit"` the student is paid (weight `alpha`) for contradicting
            the gold harmlessness label on conflicting inputs. **Predict before running**: as
            `alpha` goes from 0 to 2, what happens to the student's accuracy on conflicting
            inputs (`conflict_inputs_acc`), to the number of conflict-induced errors, and to
            `deception_excess`? Does a stronger push make the errors *more* or *less*
            concentrated in the supervisor's blind spots?
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.w2s_deception:STUDY", scale="quick", seeds=range(SEEDS),
                         sets={**SETS, "strong": "xlarge", "conflict": "explicit", "intermediate": "none"},
                         grids={"alpha": [0.0, 2.0]}, device="cpu")
            ex, _, _ = run(specs, "w2s-deception-exercise")
            ex[ex["path"] == "direct"].pivot_table(index="alpha", columns="metric", values="value")[
                ["conflict_inputs_acc", "n_conflict_errors", "deception_score", "deception_excess"]
            ].round(3)
            """
        ),
        md(
            """
            *What to look for:* with `alpha = 0` the explicit loss is off and the two students
            differ only by chance, so conflict-induced errors are few and the excess is noise.
            A large `alpha` forces many errors on conflicting inputs; once the student must
            err on most of them, it can no longer choose where, and the excess falls to about
            zero (or below). Deception is a matter of *selective* errors: the measure is largest
            when the conflict costs the student a little, not a lot.
            """
        ),
    ]


def regret_vs_partial_return() -> list[nbformat.NotebookNode]:
    return [
        md(
            """
            # Regret vs partial return: what does a human preference mean?

            *Study `regret-vs-partial-return`, after Knox, Hatgis-Kessell, Booth, Niekum,
            Stone, Allievi, "Models of human preference for learning reward functions"
            (TMLR 2024).*

            RLHF learns a reward from people's choices between two trajectory segments. To
            do so it needs a model of *why* a person prefers one segment: the standard
            answer is its **partial return**, the sum of rewards along it. Knox et al.
            propose **regret** instead: a person prefers the segment that deviates less from
            optimal decision-making (given where each segment starts and ends). A segment that
            collects no reward but makes good progress to the goal has low regret and low
            partial return.

            The choice matters twice. (1) Identifiability: some different rewards produce
            *identical* partial-return preferences over every segment pair, yet have
            different optimal policies; regret preferences tell them apart. (2) Sample
            efficiency: learning with the regret model yields better-aligned rewards from the
            same number of preferences. The study checks both on random delivery gridworlds.
            """
        ),
        params(
            """
            SCALE = "tiny"  # "tiny": seconds (what the tests run); "quick": the quick preset's sizes
            SEEDS = 2  # seeds per setting: more seeds, tighter intervals
            """
        ),
        code(
            """
            from pathlib import Path

            import matplotlib.pyplot as plt
            import numpy as np
            import pandas as pd

            from envs.delivery import FEATURES, DeliveryMDP, random_mdp
            from sandbox.preferences.segment_models import sample_segment_pairs, segment_statistic
            from sandbox.runner import plan, run_study
            from studies.regret_vs_partial_return import STUDY, twin_example

            if SCALE == "tiny":
                SETS = {"n_mdps": 3, "n_heldout": 50, "library_size": 16}
                GRID = {"n_prefs": [30, 300], "temperature": [0.0]}  # both generators and learners
            else:  # the quick preset as it is
                SETS, GRID = {}, {}
            """,
            SHOW_HELPERS,
        ),
        md(
            """
            ## The environment: delivery gridworlds

            Cells are blank `.`, goal `G` (terminal), coin `C`, sheep `S`, roadblock `R`,
            mud `M` and houses `H`; four deterministic moves. The reward is linear in six
            features, `w . [gas, goal, sheep, coin, roadblock, mud]`. Here is one of the
            random MDPs of seed 0, and two random length-3 segments compared by both models:
            """
        ),
        code(
            """
            mdp = random_mdp(np.random.SeedSequence([0, 0, 0]))
            print(mdp.render())
            print(dict(zip(FEATURES, mdp.weights)))
            gamma = 0.999
            V = mdp.solve(gamma).V
            rng = np.random.default_rng(0)
            pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 2000, 3, rng)
            pr = segment_statistic("partial_return", mdp.reward(), pairs.states, pairs.actions)
            rg = segment_statistic("regret", mdp.reward(), pairs.states, pairs.actions, V, gamma)
            pr_pref, rg_pref = np.sign(pr[:, 0] - pr[:, 1]), np.sign(rg[:, 0] - rg[:, 1])
            print(f"the two models disagree (strictly, or tie vs preference) on "
                  f"{np.mean(pr_pref != rg_pref):.0%} of {len(pr)} random segment pairs")
            i = int(np.flatnonzero((pr_pref != rg_pref) & (pr_pref != 0) & (rg_pref != 0))[0])
            pd.DataFrame({"states": [pairs.states[i, 0], pairs.states[i, 1]],
                          "partial return": pr[i], "-regret": rg[i]}, index=["segment 1", "segment 2"])
            """
        ),
        md(
            """
            The partial-return model prefers one segment, the regret model the other: the
            same person-choice means different things to the two models, and a reward
            learner that assumes the wrong one fits the wrong reward.

            The study also searches, exhaustively, for two rewards that no amount of
            partial-return preferences can tell apart:
            """
        ),
        code(
            """
            display(Markdown(twin_example(segment_length=3)))
            """
        ),
        md(
            """
            ## One small run

            Each run is one seed over its own sample of `n_mdps` random MDPs. A simulated
            human labels `n_prefs` segment pairs with one model (`generator`); a linear reward
            is learned assuming one model (`learner`); an MDP counts as solved when the
            learned reward's optimal policy reaches 90% of the optimal (scaled) return.
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.regret_vs_partial_return:STUDY", scale="quick",
                         seeds=range(SEEDS), sets=SETS, grids=GRID, device="cpu")
            print(len(specs), "runs")
            results, manifest, folder = run(specs, "regret-vs-partial-return")
            near = results[results["metric"] == "near_optimal_frac"]
            near.pivot_table(index=["generator", "learner"], columns="n_prefs", values="value").round(2)
            """
        ),
        md(
            """
            ## The key figure

            The fraction of MDPs where the learned reward is near-optimal, against the number
            of preferences, for each generator -> learner pair. Knox et al.'s claim:
            regret -> regret (solid blue) lies above partial_return -> partial_return (solid
            orange). With a tiny number of MDPs and seeds the bands are wide; `SCALE =
            "quick"` runs the study's preset.
            """
        ),
        code(
            """
            show_figure(folder, "near_optimal_vs_n_prefs.png")
            text = STUDY.summarize(results, manifest)
            display(Markdown(text.split("## Partial return is not identifiable")[0]))
            """
        ),
        md(
            """
            ## Exercise: noisy humans

            Real people are noisy. With `temperature = 1` the simulated human picks the
            segment with the better statistic only with Boltzmann probability. **Predict
            before running**: does noise hurt the regret learner or the partial-return learner
            more? Could noise even *help* one of them (hint: a noiseless labeller says 'tie'
            on many pairs, and a noisy one reveals how *much* better a segment is)?
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.regret_vs_partial_return:STUDY", scale="quick",
                         seeds=range(SEEDS), device="cpu",
                         sets={**SETS, "n_prefs": 300},
                         grids={"generator": ["partial_return", "regret"], "temperature": [0.0, 1.0]})
            specs = [s for s in specs if s.config["generator"] == s.config["learner"]]
            ex, _, _ = run(specs, "regret-exercise")
            ex[ex["metric"] == "near_optimal_frac"].pivot_table(
                index="generator", columns="temperature", values="value").round(2)
            """
        ),
        md(
            """
            *What to look for:* Boltzmann noise carries information. A noiseless labeller
            only reveals the *sign* of the difference between two segments; with noise, how
            often a segment wins reveals how large the difference is, which pins down the
            scale of the reward. Compare the two columns for each model, and then rerun with
            `n_prefs` 30: with few preferences, is noise still a help?
            """
        ),
    ]


def principal_agent() -> list[nbformat.NotebookNode]:
    return [
        md(
            """
            # Principal-agent problems: whose side is the shopping agent on?

            *Study `principal-agent`, after Phelps & Ranson, "Of Models and Tin Men: A
            Behavioural Economics Study of Principal-Agent Problems in AI Alignment using
            Large-Language Models" (2023).*

            An AI agent that acts for a customer (its *principal*) may also represent a
            company whose interest conflicts with the customer's wishes. Economics has a name
            for this: the principal-agent problem, made worse by **information asymmetry**:
            the agent knows what it did and why, the principals may not. Phelps & Ranson gave
            GPT-3.5 and GPT-4 a shopping task with such a conflict and varied who will read
            the agent's explanation: the company and the customer (`both`), the company only
            (`principal-only`), the customer only (`user-only`), or nobody (`neither`).
            The outcome: does the agent **override** the customer's first preference?

            Their findings: both models override their client; GPT-3.5 responds to the
            information conditions, GPT-4 sticks to its prior alignment. The study replays
            their recorded answers (when the recordings are present), runs a live model on
            any OpenAI-compatible endpoint, and compares both with two offline agents: a
            scripted salesperson persona and a rational-choice (economic) agent.
            """
        ),
        params(
            """
            SCALE = "tiny"  # "tiny": seconds (what the tests run); "quick": the quick preset's sizes
            SEEDS = 1  # seeds per setting: more seeds, tighter intervals
            """
        ),
        code(
            """
            from pathlib import Path

            import gymnasium as gym
            import matplotlib.pyplot as plt
            import numpy as np

            import envs  # noqa: F401  (registers sandbox/Shopping-v0)
            from agents.economic import EconomicAgent
            from sandbox.runner import plan, run_study
            from studies.principal_agent import STUDY

            # offline backends; "replay" is in the preset only when the recorded transcripts
            # (../shared/data/tinmen) are found
            BACKENDS = list(STUDY.presets["quick"].grid["backend"])
            if SCALE == "tiny":
                SETS = {"samples": 10}
            else:  # the quick preset as it is
                SETS = {}
            print("backends:", BACKENDS)
            """,
            SHOW_HELPERS,
        ),
        md(
            """
            ## The environment: one purchase

            `sandbox/Shopping-v0` is a one-step text environment. The observation is the
            paper's prompt, character for character; the action is the agent's filled-in
            form; `info` holds the products, the budget, the customer's first preference and
            who will read the explanation. Here is the `car` scenario when nobody reads the
            explanation, answered by the economic agent:
            """
        ),
        code(
            """
            env = gym.make("sandbox/Shopping-v0", scenario="car", condition="neither")
            prompt, info = env.reset(seed=0)
            print(prompt)
            agent = EconomicAgent(alpha=0.5, kappa=0.5)
            answer = agent.act(info, np.random.default_rng(0))
            print("\\n--- the economic agent answers:\\n" + answer)
            _, reward, terminated, _, outcome = env.step(answer)
            print("\\n--- outcome:", {k: outcome[k] for k in ("choice", "override") if k in outcome},
                  "customer's utility (reward):", reward)
            """
        ),
        md(
            """
            ## One small run

            Every backend answers `samples` trials in each scenario x condition cell; override
            rates come with Wilson 95% intervals over the pooled trials.
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.principal_agent:STUDY", scale="quick",
                         seeds=range(SEEDS), sets=SETS, grids={"backend": BACKENDS})
            print(len(specs), "runs")
            results, manifest, folder = run(specs, "principal-agent")
            rates = results[results["metric"] == "override_rate"]
            rates.pivot_table(index=["backend", "model", "scenario"], columns="condition",
                              values="value").round(2)
            """
        ),
        md(
            """
            ## The key figure: override rates by who reads the explanation
            """
        ),
        code(
            """
            show_figure(folder, "override_rates.png")
            text = STUDY.summarize(results, manifest)
            display(Markdown(text[text.find("## "):] if "## " in text else text))
            """
        ),
        md(
            """
            ## Exercise: the price of being seen

            The economic agent trades the customer's utility (weight `alpha`) against the
            company's, and pays a reputational cost `kappa` for an override the customer
            reads about. **Predict before running**: with `kappa = 0`, does the information
            condition still matter? With `kappa = 2`, in which conditions does the agent
            still override? Which of GPT-3.5 and GPT-4 (in the paper) does each setting
            resemble?
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.principal_agent:STUDY", scale="quick", seeds=range(SEEDS),
                         sets={**SETS, "backend": "economic", "scenario": "car"},
                         grids={"kappa": [0.0, 2.0]})
            ex, _, _ = run(specs, "principal-agent-exercise")
            ex[ex["metric"] == "override_rate"].pivot_table(
                index="kappa", columns="condition", values="value").round(2)
            """
        ),
        md(
            """
            *What to look for:* without a reputational cost the agent's choice depends only on
            the utilities, so the four conditions look alike (a rigid agent, GPT-4-like in the
            paper's terms). A cost paid only when the customer reads the explanation makes the
            agent override exactly where it will not be seen (`principal-only`, `neither`):
            responsiveness to information asymmetry, as the paper reports for GPT-3.5. Now try
            `leak` (the chance a hidden explanation is read anyway): how much leakage does it
            take to make the agent honest everywhere?
            """
        ),
    ]


def pluralistic_maxmin() -> list[nbformat.NotebookNode]:
    return [
        md(
            """
            # Pluralistic alignment: one reward for everyone fails the minority

            *Study `pluralistic-maxmin`, after Chakraborty et al., "MaxMin-RLHF: Towards
            Equitable Alignment of Large Language Models with Diverse Human Preferences"
            (ICML 2024), with the ideal-point mixture of Chen et al., "PAL: Pluralistic
            Alignment Framework for Learning from Heterogeneous Preferences" (2024).*

            Standard RLHF fits *one* reward model to the preferences of all annotators. When
            the annotators form groups whose preferences conflict, that single reward is
            dominated by the majority, and the policy aligned to it can serve the minority
            *worse than doing nothing*. Chakraborty et al. prove an impossibility result for
            the single-reward approach and propose **MaxMin-RLHF**: learn a mixture of rewards
            (one per discovered group, by EM) and align the policy to maximise the *worst-off*
            group's reward. PAL learns the groups as ideal points in a shared embedding space,
            which also lets it adapt to a new user from a few of their preferences.

            Here the world is a contextual bandit: prompts, candidate responses embedded in
            R^dim, and a population (a Mesa model) of annotators with value vectors.
            """
        ),
        params(
            """
            SCALE = "tiny"  # "tiny": seconds (what the tests run); "quick": the quick preset's sizes
            SEEDS = 2  # seeds per setting: more seeds, tighter intervals
            """
        ),
        code(
            """
            from pathlib import Path

            import matplotlib.pyplot as plt
            import numpy as np

            from sandbox.population import Population
            from sandbox.runner import plan, run_study
            from studies.pluralistic_maxmin import STUDY, group_centres, group_names

            if SCALE == "tiny":
                SETS = {"n_users": 80, "n_prompts": 40, "n_unseen_users": 10, "pal_steps": 100}
                GRID = {"minority_share": [0.1, 0.3]}  # and all three methods (the preset's grid)
            else:  # the quick preset as it is
                SETS, GRID = {}, {}
            """,
            SHOW_HELPERS,
        ),
        md(
            """
            ## The population

            Each group has a centre in value space: the majority on one side, the minority
            on the other, and a component every group shares (the last axis). Annotators
            scatter around their group's centre; under the ideal-point model an annotator
            prefers the response whose embedding is closer to their value vector (with
            Boltzmann noise). Below, the first two value axes (plus the shared axis on the
            right) and the responses of one prompt:
            """
        ),
        code(
            """
            cfg = STUDY.Config(minority_share=0.2)
            centres = group_centres(cfg)
            shares = [1 - cfg.minority_share, cfg.minority_share]
            pop = Population.from_groups(300, shares, centres, cfg.spread, seed=0)
            responses = np.random.default_rng(0).standard_normal((cfg.n_candidates, cfg.dim))

            fig, axes = plt.subplots(1, 2, figsize=(10, 4))
            for ax, (i, j) in zip(axes, [(0, 1), (0, cfg.dim - 1)]):
                for g, name in enumerate(group_names(cfg.n_groups)):
                    members = pop.values[pop.groups == g]
                    ax.scatter(members[:, i], members[:, j], s=6, alpha=0.5,
                               label=f"{name} ({shares[g]:.0%})")
                    ax.plot(*centres[g, [i, j]], "k*", markersize=12)
                ax.scatter(responses[:, i], responses[:, j], marker="s", c="k", s=25,
                           label="responses to one prompt")
                ax.set_xlabel(f"value axis {i}"); ax.set_ylabel(f"value axis {j}")
            axes[0].legend(fontsize=8)
            axes[1].set_title("the last axis is shared by every group")
            fig.tight_layout()
            plt.show()

            # the two groups' favourite responses for this prompt
            for g, name in enumerate(group_names(cfg.n_groups)):
                dist = ((responses - centres[g]) ** 2).sum(axis=1)
                print(f"{name:9s} ranks the responses: {np.argsort(dist)}")
            """
        ),
        md(
            """
            ## One small run

            Three methods on the same world, population and labels (per seed): `single`
            (one Bradley-Terry reward, KL-regularised policy: standard RLHF), `em_maxmin`
            (EM mixture of rewards + MaxMin policy) and `pal` (ideal-point mixture + MaxMin).
            Each aligned policy is judged by its win rate against the reference policy under
            each group's *true* reward.
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.pluralistic_maxmin:STUDY", scale="quick",
                         seeds=range(SEEDS), sets=SETS, grids=GRID, device="cpu")
            print(len(specs), "runs")
            results, manifest, folder = run(specs, "pluralistic-maxmin")
            wins = results[results["metric"].isin(["win_rate_majority", "win_rate_minority"])]
            wins.pivot_table(index=["minority_share", "method"], columns="metric", values="value").round(3)
            """
        ),
        md(
            """
            ## The key figure: win rate per group

            A win rate of 0.5 (dotted) is no better than the reference policy. The paper's
            claim: the single reward serves the majority and fails the minority, the smaller
            the minority the worse; MaxMin lifts the minority at a small cost to the majority.
            """
        ),
        code(
            """
            show_figure(folder, "win_rate_by_group.png")
            display(Markdown(STUDY.summarize(results, manifest)))
            """
        ),
        md(
            """
            ## Exercise: when do the groups really disagree?

            `separation` is the distance of each group's centre from the shared point: at 0
            every annotator has (up to `spread`) the same values. **Predict before running**:
            as the separation grows from 0.25 to 3, how does the minority's win rate change
            under the single reward? Under MaxMin? At which separation does the choice of
            method stop mattering?
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.pluralistic_maxmin:STUDY", scale="quick", seeds=range(SEEDS),
                         sets={**SETS, "minority_share": 0.1, "n_unseen_users": 0},
                         grids={"method": ["single", "em_maxmin"], "separation": [0.25, 1.5, 3.0]},
                         device="cpu")
            ex, _, _ = run(specs, "pluralistic-exercise")
            ex[ex["metric"] == "win_rate_minority"].pivot_table(
                index="separation", columns="method", values="value").round(3)
            """
        ),
        md(
            """
            *What to look for:* with little separation the groups want nearly the same
            responses, so one reward serves everyone and MaxMin buys nothing. As the groups
            pull apart, the single reward follows the majority and the minority's win rate
            falls, towards or below 0.5; MaxMin keeps the worst-off group's win rate up.
            Then vary `shared` (the value component all groups agree on): does a large shared
            component rescue the single reward?
            """
        ),
    ]


def parl_vs_pebble() -> list[nbformat.NotebookNode]:
    return [
        md(
            """
            # Preference-based RL as a bilevel problem: PARL vs PEBBLE

            *Study `parl-vs-pebble`, after Chakraborty, Bedi, Koppel, Wang, Manocha, Wang,
            Huang, "PARL: A Unified Framework for Policy Alignment in Reinforcement Learning"
            (ICLR 2024), against PEBBLE (Lee, Smith, Abbeel, ICML 2021).*

            In preference-based RL the agent never sees the task reward. A teacher compares
            pairs of short segments of the agent's own behaviour; a reward model is fitted to
            those comparisons, and the agent (here SAC) optimises the learned reward.
            PEBBLE alternates the two: fit the reward to the labels, then improve the policy
            on it. PARL observes that this is a **bilevel** problem: the data the reward is
            fitted on is generated by the policy, which depends on the reward. Ignoring that
            dependence (as PEBBLE does) misaligns the upper-level objective; PARL follows the
            policy-dependent part of the gradient too, and reports up to 63% fewer samples
            than PEBBLE to reach the same return.

            This notebook runs the loop at a toy scale. It shows *how* the study works; it
            cannot test the claim, which needs the `full` presets (hours on a GPU).
            """
        ),
        params(
            """
            SCALE = "tiny"  # "tiny": seconds (what the tests run); "quick": the quick preset's sizes
            SEEDS = 1  # seeds per setting: more seeds, tighter intervals
            """
        ),
        code(
            """
            import os

            os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering
            from pathlib import Path

            import matplotlib.pyplot as plt
            import numpy as np
            import pandas as pd

            from envs.control import make
            from sandbox.preferences.teachers import PRESETS, Teacher
            from sandbox.runner import plan, run_study
            from studies.parl_vs_pebble import STUDY

            if SCALE == "tiny":  # cartpole-swingup as in the quick preset, smaller still
                SETS = {"total_steps": 400, "unsup_steps": 100, "learning_starts": 100,
                        "session_interval": 100, "queries_per_session": 10, "feedback_budget": 30,
                        "segment_length": 10, "eval_interval": 200, "eval_episodes": 1,
                        "net_width": 32, "batch_size": 32, "reward_width": 32, "reward_epochs": 5}
            else:  # the quick preset as it is
                SETS = {}
            """,
            SHOW_HELPERS,
        ),
        md(
            """
            ## The environment: a control task with its reward hidden

            The DM Control and Meta-World tasks are wrapped so that the reward the agent
            receives is zero; the true reward travels in `info["true_reward"]`, where only
            the teacher and the evaluation read it.
            """
        ),
        code(
            """
            env = make("cartpole-swingup", hide_reward=True, render_mode="rgb_array")
            obs, info = env.reset(seed=0)
            frame = env.render()
            rewards = []
            for _ in range(20):
                obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
                rewards.append((reward, info["true_reward"]))
            env.close()
            print("observation:", env.observation_space, " action:", env.action_space)
            print("(reward the agent sees, true reward) for the last 3 steps:", rewards[-3:])
            plt.imshow(frame); plt.axis("off"); plt.title("cartpole-swingup")
            plt.show()
            """
        ),
        md(
            """
            The teachers are B-Pref's scripted humans (Lee et al. 2021): each compares two
            segments by their true returns, with its own imperfection.
            """
        ),
        code(
            """
            display(pd.DataFrame({name: vars(spec) for name, spec in PRESETS.items()}).T)
            rng = np.random.default_rng(0)
            r1, r2 = rng.normal(1.0, 1.0, (8, 10)), rng.normal(1.2, 1.0, (8, 10))  # 8 segment pairs
            for name in ("oracle", "noisy", "mistake"):
                labels = Teacher.preset(name, rng=0).label(r1, r2).labels
                print(f"{name:8s} prefers the first segment: {labels}")
            print("true return difference:", (r1.sum(1) - r2.sum(1)).round(1))
            """
        ),
        md(
            """
            ## One small run

            Three methods: `sac_true_reward` (SAC on the true reward: the upper bound),
            `pebble` and `parl`, each with the same feedback budget and teacher.
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.parl_vs_pebble:STUDY", scale="quick",
                         seeds=range(SEEDS), sets=SETS, device="cpu")
            print(len(specs), "runs")
            results, manifest, folder = run(specs, "parl-vs-pebble")
            results.pivot_table(index=["method", "step"], columns="metric", values="value").round(3)
            """
        ),
        md(
            """
            ## The key figure: true return over environment steps

            The report measures the steps and the feedback each method needs to reach 80% of
            the oracle SAC's final return. At this toy scale the curves are a few evaluations
            of a barely trained agent: the figure shows the shape of the experiment.
            """
        ),
        code(
            """
            show_figure(folder, "true_return.png")
            display(Markdown(STUDY.summarize(results, manifest)))
            """
        ),
        md(
            """
            ## Exercise: a teacher who makes mistakes

            The `mistake` teacher flips 10% of its labels. **Predict before running**: how
            much does that lower the reward model's agreement with the true preferences
            (`reward_model_accuracy`)? More or less than 10 points? Would PARL's extra
            gradient term help or hurt with a noisy teacher?
            """
        ),
        code(
            """
            specs = plan(STUDY, "studies.parl_vs_pebble:STUDY", scale="quick", seeds=range(SEEDS),
                         sets={**SETS, "method": "pebble"}, grids={"teacher": ["oracle", "mistake"]},
                         device="cpu")
            ex, _, _ = run(specs, "parl-vs-pebble-exercise")
            ex[ex["metric"] == "reward_model_accuracy"].pivot_table(
                index="step", columns="teacher", values="value").round(3)
            """
        ),
        md(
            """
            *What to look for:* a reward model fitted to labels that are 10% wrong can still
            rank segments well (the errors are unsystematic and the model averages over
            them), but with a budget of a few dozen labels every label counts. Rerun with
            `SCALE = "quick"`, more seeds and a larger `feedback_budget` to see whether the
            gap closes, and add `"parl"` to compare the two methods under each teacher.
            """
        ),
    ]


NOTEBOOKS = {
    "parl_vs_pebble": parl_vs_pebble,
    "pluralistic_maxmin": pluralistic_maxmin,
    "principal_agent": principal_agent,
    "regret_vs_partial_return": regret_vs_partial_return,
    "progress_coevolve": progress_coevolve,
    "w2s_deception": w2s_deception,
}


def build(name: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = NOTEBOOKS[name]()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs reviewable
        cell["id"] = f"{name[:20]}-{i:02d}"
    return nb


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name in NOTEBOOKS:
        path = HERE / f"{name}.ipynb"
        text = render(name)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python studies/notebooks/build.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
