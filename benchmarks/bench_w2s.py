"""Weak-to-strong learners: 8 seeds trained as one batched model vs 8 sequential trainings.

Both sides run the same code (:func:`agents.w2s.train_members`) on the same data: the
reference trains each seed as a one-member model in a loop; ours trains the eight seeds
as one :class:`agents.w2s.BatchedMLP` (stacked parameters, batched matmuls). The models
are the same training up to float32 summation order (the payload has the largest
difference of test probabilities: ~2e-7 after one step, which Adam amplifies on a few
weights over hundreds of steps; see docs/studies/w2s-deception.md). Measured on the CPU (one torch thread by default, as the runner gives each
study run) and, when ``torch.cuda.is_available()``, on CUDA, naming the card.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from agents.w2s import Ladder, Member, TrainSettings, rung, train_members
from benchmarks.common import best_of, write_result
from envs.w2s import make_task


def _bench_device(
    device: str,
    members: list[Member],
    name: str,
    settings: TrainSettings,
    test: np.ndarray,
    repeats: int,
) -> dict:
    r = rung(name)

    def batched():
        return train_members(members, r.width, r.depth, settings, device=device)

    def sequential():
        return [train_members([m], r.width, r.depth, settings, device=device) for m in members]

    def synced(fn):
        def run():
            out = fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            return out

        return run

    batched(), sequential()  # warm-up (CUDA context, kernels, allocator)
    t_batched = best_of(synced(batched), repeats)
    t_seq = best_of(synced(sequential), repeats)
    p_batched = batched().predict_proba(test)
    p_seq = np.stack([m.predict_proba(test)[0] for m in sequential()])
    out = {
        "batched_s": round(t_batched, 4),
        "sequential_s": round(t_seq, 4),
        "speedup": round(t_seq / t_batched, 3),
        "max_abs_prob_diff": float(np.abs(p_batched - p_seq).max()),
    }
    if device.startswith("cuda"):
        out["card"] = torch.cuda.get_device_name(torch.device(device))
    else:
        out["torch_threads"] = torch.get_num_threads()
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke check)")
    parser.add_argument("--rung", default="xlarge", help="ladder rung to train (default xlarge)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1, as the study runner uses per run)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    n_seeds = 8
    steps, n_gold, repeats = (40, 1000, 1) if args.quick else (400, 4000, 3)
    settings = TrainSettings(steps=steps, batch_size=256)
    data = make_task(0, n_gold=n_gold, n_train=16, n_help=16, n_test=2000)
    ladder = Ladder(data, seed=0)
    x = ladder.view(args.rung, "gold")
    y = data.gold.y_harmless.astype(np.float32)
    members = [Member(x, y, seed=100 + s) for s in range(n_seeds)]
    test = ladder.view(args.rung, "test")
    payload: dict = {
        "what": f"{n_seeds} seeds of rung {args.rung!r}, {steps} steps, batch 256: one batched "
        "model vs sequential trainings; speedup = sequential / batched wall time",
        "n_seeds": n_seeds,
        "steps": steps,
        "rung": args.rung,
        "quick": args.quick,
        "cpu": _bench_device("cpu", members, args.rung, settings, test, repeats),
    }
    if torch.cuda.is_available():
        payload["cuda"] = _bench_device("cuda", members, args.rung, settings, test, repeats)
    path = write_result("w2s", payload)
    for dev in ("cpu", "cuda"):
        if dev in payload:
            r = payload[dev]
            extra = f" on {r['card']}" if "card" in r else ""
            print(
                f"{dev}{extra}: batched {r['batched_s']:.3f}s, sequential {r['sequential_s']:.3f}s, "
                f"speedup x{r['speedup']:.2f} (max prob diff {r['max_abs_prob_diff']:.1e})"
            )
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
