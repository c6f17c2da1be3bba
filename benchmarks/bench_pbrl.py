"""Preference-based RL costs: relabelling a replay buffer, and the PbRL loop vs plain SAC.

1. Relabelling N transitions (1,000,000 at full size) with the 3-member ensemble (3 x 256
   LeakyReLU, tanh): our ensemble module (one forward for all members; its default
   kernel choice on this device) and its ``torch.bmm`` path, against member-by-member
   ``torch.nn.Sequential`` copies of the same weights. Ratio = member-by-member seconds /
   ours (> 1: ours is faster). On CPUs PyTorch's bmm is slower than separate GEMMs, which
   is why the module uses per-member GEMMs there (``bmm_ratio`` shows the difference).
2. Environment steps per second of the PEBBLE loop (state-entropy pre-training, feedback
   sessions, reward updates, relabelling) against plain SAC on the true reward, same
   networks, same task (cartpole-swingup). Ratio = PbRL steps/s / SAC steps/s.

Torch runs on one thread, as in the runner's workers.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from benchmarks.common import write_result
from sandbox.rewards import EnsembleRewardModel


def member_by_member(model: EnsembleRewardModel) -> list[torch.nn.Sequential]:
    """Ordinary per-member MLPs holding copies of the ensemble's weights."""
    members = []
    for e in range(model.n_members):
        layers: list[torch.nn.Module] = []
        for i, layer in enumerate(model.layers):
            lin = torch.nn.Linear(layer.weight.shape[1], layer.weight.shape[2])
            with torch.no_grad():
                lin.weight.copy_(layer.weight[e].T)
                lin.bias.copy_(layer.bias[e, 0])
            layers += [lin, torch.nn.Tanh() if i == len(model.layers) - 1 else torch.nn.LeakyReLU()]
        members.append(torch.nn.Sequential(*layers).to(model.device))
    return members


@torch.no_grad()
def relabel_sequential(members: list[torch.nn.Sequential], x: np.ndarray, chunk: int) -> np.ndarray:
    out = np.zeros(x.shape[0], dtype=np.float32)
    for member in members:
        for start in range(0, x.shape[0], chunk):
            batch = torch.as_tensor(x[start : start + chunk])
            out[start : start + chunk] += member(batch).squeeze(-1).numpy()
    return out / len(members)


def relabel(n: int, repeats: int, obs_dim: int = 24, act_dim: int = 6) -> dict[str, float]:
    chunk = 16384
    model = EnsembleRewardModel(obs_dim + act_dim, device="cpu", seed=0)
    bmm = EnsembleRewardModel(obs_dim + act_dim, device="cpu", seed=0, batched=True)
    x = np.random.default_rng(0).normal(size=(n, obs_dim + act_dim)).astype(np.float32)
    members = member_by_member(model)
    np.testing.assert_allclose(
        model.predict(x[:chunk]),
        relabel_sequential(members, x[:chunk], chunk),
        rtol=1e-4,
        atol=1e-5,
    )
    times: dict[str, list[float]] = {"ours": [], "bmm": [], "member_by_member": []}
    for _ in range(repeats):  # interleaved; the best of each is the least disturbed
        for name, fn in (
            ("ours", lambda: model.predict(x, batch_size=chunk)),
            ("bmm", lambda: bmm.predict(x, batch_size=chunk)),
            ("member_by_member", lambda: relabel_sequential(members, x, chunk)),
        ):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    return {
        "transitions": n,
        "ours_s": round(best["ours"], 3),
        "bmm_s": round(best["bmm"], 3),
        "member_by_member_s": round(best["member_by_member"], 3),
        "ratio": round(best["member_by_member"] / best["ours"], 3),
        "bmm_ratio": round(best["member_by_member"] / best["bmm"], 3),
        "ours_kernel": "bmm" if model.batched else "per-member GEMM",
    }


def loop(steps: int) -> dict[str, float]:
    from agents.pbrl import PbRLSettings, PreferenceSAC
    from envs.control import make

    common = dict(
        feedback_budget=10_000,
        queries_per_session=50,
        session_interval=max(steps // 5, 1),
        segment_length=25,
        unsup_steps=steps // 4,
        learning_starts=steps // 8,
        reward_hidden=(256, 256, 256),
        net_arch=(256, 256),
        batch_size=256,
        reward_epochs=10,
        buffer_size=steps,
        query_window=steps,
    )
    rates = {}
    for method in ("sac_true_reward", "pebble"):
        agent = PreferenceSAC(
            lambda: make("cartpole-swingup", hide_reward=True, action_repeat=4),
            PbRLSettings(method=method, **common),
            seed=0,
            device="cpu",
        )
        t0 = time.perf_counter()
        agent.learn(steps, eval_interval=0, eval_episodes=1)
        rates[method] = steps / (time.perf_counter() - t0)
        agent.close()
    return {
        "steps": steps,
        "sac_steps_per_s": round(rates["sac_true_reward"], 1),
        "pbrl_steps_per_s": round(rates["pebble"], 1),
        "ratio": round(rates["pebble"] / rates["sac_true_reward"], 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        relabelling = relabel(20_000 if args.quick else 1_000_000, 2 if args.quick else 3)
        pbrl_loop = loop(400 if args.quick else 5000)
    finally:
        torch.set_num_threads(threads)
    write_result(
        "pbrl",
        {
            "ratio": relabelling["ratio"],
            "ratio_meaning": "relabelling: member-by-member seconds / our ensemble's seconds",
            "loop_ratio": pbrl_loop["ratio"],
            "loop_ratio_meaning": "PEBBLE loop env-steps/s / plain SAC env-steps/s",
            "quick": args.quick,
            "relabel": relabelling,
            "loop": pbrl_loop,
        },
    )


if __name__ == "__main__":
    main()
