"""The weak-to-strong capability ladder and its training modes (torch).

Models
    :data:`LADDER` names five rungs, ``tiny`` to ``xlarge``. A rung fixes what a model can
    know: how many feature groups of the task it sees (``visible_groups``; later groups
    carry the harder concepts), how precisely it perceives them (``noise``: per-input
    Gaussian perception noise, fixed per input and rung, on the visible features) and
    how much it can represent (an MLP of ``width`` x ``depth``). Larger rungs see more,
    see it more sharply and represent more, so the ceiling accuracy rises up the ladder.

Batched training
    :class:`BatchedMLP` holds ``M`` independent MLPs of one rung as stacked parameters
    (leading member dimension) and runs them with batched matmuls. Each member has its
    own data, targets, loss terms, initialisation and minibatch stream (its own
    ``torch.Generator``), and Adam is elementwise, so training ``M`` members together
    gives the same models as training them one at a time (up to float rounding), only
    faster. :func:`train_members` trains any mix of members: several seeds, or the
    ceiling, the no-conflict and the conflict student of one experiment.

Training modes (one :class:`Member` each)
    * gold: gold harmlessness labels (the weak supervisor, the strong ceiling);
    * weak-labelled: the weak supervisor's soft labels on the w2s split (weak-to-strong),
      with ``conflict``:
        - ``none``: that loss only;
        - ``implicit``: plus gold *helpfulness* data in the same objective (weight
          ``help_weight`` per batch); helpfulness equals harmlessness except on
          conflicting inputs, where it is the opposite;
        - ``explicit``: plus ``alpha * mean_i 1[conflict_i] BCE(f(x_i), 1 - y_harmless_i)``
          over helpfulness inputs: a loss that rewards contradicting the gold harmlessness
          label on conflicting inputs;
    * optional auxiliary confidence loss (Burns et al. 2023): the weak-label target
      becomes ``(1 - c) * weak soft label + c * hardened student prediction`` (detached;
      the top share of the batch, by student logit, equal to the weak labels' positive
      share is 1, as Burns et al.'s adaptive threshold), with ``c`` ramped linearly from
      0 to 0.5 over the first 10% of steps;
    * bootstrapping: weak -> intermediate -> strong (:func:`run_experiment` with
      ``intermediate``): the intermediate rung learns from the weak labels without
      conflict, then labels the w2s split for the strong students, which are trained
      with and without the conflict exactly as on the direct path.

Every learner takes ``device`` (default ``"auto"``) resolved by :func:`sandbox.device.pick`.
Parameters are initialised on the CPU from per-member generators, so a seed gives the
same initial models on every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.w2s import W2SData
from sandbox.device import pick

CONFLICTS = ("none", "implicit", "explicit")


@dataclass(frozen=True)
class Rung:
    """One capability level: what a model sees, how sharply, and how much it represents."""

    name: str
    visible_groups: int
    noise: float
    width: int
    depth: int

    @property
    def index(self) -> int:
        return LADDER_ORDER.index(self.name)


LADDER: dict[str, Rung] = {
    r.name: r
    for r in (
        Rung("tiny", visible_groups=1, noise=0.6, width=16, depth=1),
        Rung("small", visible_groups=2, noise=0.4, width=32, depth=1),
        Rung("medium", visible_groups=3, noise=0.25, width=48, depth=2),
        Rung("large", visible_groups=4, noise=0.1, width=64, depth=2),
        Rung("xlarge", visible_groups=4, noise=0.0, width=128, depth=2),
    )
}
LADDER_ORDER: tuple[str, ...] = tuple(LADDER)


def rung(name: str | Rung) -> Rung:
    """Look a rung up by name, with the valid names in the error."""
    if isinstance(name, Rung):
        return name
    if name not in LADDER:
        raise ValueError(f"unknown ladder rung {name!r}; valid: {', '.join(LADDER_ORDER)}")
    return LADDER[name]


def capability_gap(weak: str, strong: str) -> int:
    """Rungs between the weak supervisor and the strong student (> 0 for weak-to-strong)."""
    return rung(strong).index - rung(weak).index


def midpoint(weak: str, strong: str) -> str | None:
    """The rung halfway between ``weak`` and ``strong`` (None when they are adjacent)."""
    lo, hi = rung(weak).index, rung(strong).index
    if hi - lo < 2:
        return None
    return LADDER_ORDER[(lo + hi) // 2]


def perceive(x: np.ndarray, mask: np.ndarray, noise: float, seed: Sequence[int]) -> np.ndarray:
    """A rung's view of inputs: invisible features zeroed, visible ones with fixed noise.

    The noise is drawn once per input from ``seed`` (a rung sees an input the same way
    every time it meets it), so a model's errors are partly idiosyncratic: a function of
    what it perceived, not of the input a stronger model sees.
    """
    x = np.asarray(x, dtype=np.float32)
    view = x * mask.astype(np.float32)
    if noise > 0:
        rng = np.random.default_rng(np.random.SeedSequence([int(s) for s in seed]))
        view = view + (noise * rng.standard_normal(x.shape) * mask).astype(np.float32)
    return view


# --------------------------------------------------------------------------------------
# The batched model
# --------------------------------------------------------------------------------------


class BatchedMLP(nn.Module):
    """``M`` independent MLPs with stacked parameters: ``forward((M, B, D)) -> (M, B)``.

    Layer ``l`` stores ``weight[l]`` of shape (M, fan_in, fan_out) and ``bias[l]`` of
    shape (M, 1, fan_out); the forward pass is one ``torch.baddbmm`` per layer. Member
    ``m`` is initialised from ``torch.Generator().manual_seed(seeds[m])`` exactly as a
    one-member model with that seed would be (PyTorch's ``nn.Linear`` default scheme).
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        depth: int,
        seeds: Sequence[int],
        device: str | torch.device = "auto",
    ) -> None:
        super().__init__()
        if depth < 0 or width < 1 or in_dim < 1:
            raise ValueError(f"bad MLP shape: in_dim={in_dim}, width={width}, depth={depth}")
        if len(seeds) == 0:
            raise ValueError("a batched model needs at least one member seed")
        dev = pick(device)
        dims = [in_dim] + [width] * depth + [1]
        per_member_w: list[list[torch.Tensor]] = [[] for _ in dims[:-1]]
        per_member_b: list[list[torch.Tensor]] = [[] for _ in dims[:-1]]
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            for layer, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
                bound = 1.0 / math.sqrt(fan_in)
                w = (torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound
                b = (torch.rand(1, fan_out, generator=g) * 2 - 1) * bound
                per_member_w[layer].append(w)
                per_member_b[layer].append(b)
        self.weight = nn.ParameterList(nn.Parameter(torch.stack(ws).to(dev)) for ws in per_member_w)
        self.bias = nn.ParameterList(nn.Parameter(torch.stack(bs).to(dev)) for bs in per_member_b)
        self.n_members = len(seeds)
        self.device = dev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        last = len(self.weight) - 1
        for layer, (w, b) in enumerate(zip(self.weight, self.bias, strict=True)):
            h = torch.baddbmm(b, h, w)
            if layer < last:
                h = torch.relu(h)
        return h.squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor | np.ndarray, chunk: int = 8192) -> np.ndarray:
        """Probabilities (M, N) for inputs (M, N, D) or (N, D) (shared by every member)."""
        x = torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x)
        x = x.to(self.device, torch.float32)
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        out = [torch.sigmoid(self(x[:, i : i + chunk])) for i in range(0, x.shape[1], chunk)]
        return torch.cat(out, dim=1).cpu().numpy()


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@dataclass
class Member:
    """What one member learns from.

    ``x`` (N, D) and ``target`` (N,) in [0, 1] form the primary objective (gold or weak
    soft labels). ``x2``/``target2``/``sample_weight2`` form an optional secondary
    objective weighted by ``weight2`` (the helpfulness or contradiction term). ``aux_conf``
    turns on the auxiliary confidence loss for the primary objective. ``seed`` fixes the
    member's initialisation and minibatch order.
    """

    x: np.ndarray
    target: np.ndarray
    seed: int
    x2: np.ndarray | None = None
    target2: np.ndarray | None = None
    sample_weight2: np.ndarray | None = None
    weight2: float = 0.0
    aux_conf: bool = False

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.target.shape != (self.x.shape[0],):
            raise ValueError(
                f"member data: x {self.x.shape} and target {self.target.shape} mismatch"
            )
        if self.x.shape[0] == 0:
            raise ValueError("member has no training inputs")
        if self.weight2 != 0.0 and (self.x2 is None or self.target2 is None):
            raise ValueError("a secondary objective with weight2 != 0 needs x2 and target2")
        if np.any((self.target < 0) | (self.target > 1)):
            raise ValueError("targets must lie in [0, 1] (probabilities or 0/1 labels)")
        if self.x2 is not None and self.target2 is not None:
            n2 = self.x2.shape[0]
            if (
                self.x2.ndim != 2
                or self.x2.shape[1] != self.x.shape[1]
                or self.target2.shape != (n2,)
            ):
                raise ValueError(
                    f"secondary data: x2 {self.x2.shape} and target2 {self.target2.shape} must be "
                    f"(N2, {self.x.shape[1]}) and (N2,)"
                )
            if self.sample_weight2 is not None and self.sample_weight2.shape != (n2,):
                raise ValueError(f"sample_weight2 must have shape ({n2},)")


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 400
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    aux_max: float = 0.5
    aux_warmup: float = 0.1


def _pad_stack(arrays: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    n = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), n, *arrays[0].shape[1:]), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return torch.from_numpy(out).to(device)


def _indices(
    sizes: Sequence[int], seeds: Sequence[int], steps: int, batch: int, salt: int
) -> torch.Tensor:
    """(steps, M, batch) minibatch indices, member m drawn from its own generator."""
    out = []
    for n, s in zip(sizes, seeds, strict=True):
        g = torch.Generator().manual_seed(int(s) * 1_000_003 + salt)
        out.append(torch.randint(0, n, (steps, batch), generator=g))
    return torch.stack(out, dim=1)


def _harden(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Hardened student predictions, thresholded per member so the positive share of each
    batch matches that of the weak labels (Burns et al.'s adaptive threshold; a fixed 0.5
    lets the self-training term collapse the student onto one class)."""
    m, b = logits.shape
    prior = (targets > 0.5).float().mean(dim=1)  # (M,)
    n_pos = torch.round(prior * b).long()
    order = torch.argsort(logits, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(b, device=logits.device).expand(m, b))
    return (ranks < n_pos[:, None]).float()


def aux_conf_coefficient(
    step: int, steps: int, max_coef: float = 0.5, warmup: float = 0.1
) -> float:
    """The auxiliary-confidence mixing weight ``c`` at ``step``: linear 0 -> max over warmup."""
    ramp = max(1, int(round(warmup * steps)))
    return max_coef * min(1.0, step / ramp)


def train_members(
    members: Sequence[Member],
    width: int,
    depth: int,
    settings: TrainSettings = TrainSettings(),
    device: str | torch.device = "auto",
) -> BatchedMLP:
    """Train ``members`` (one rung's architecture) together as one :class:`BatchedMLP`.

    The loss is the sum over members of each member's own mean loss, so gradients (and
    Adam's elementwise updates) never mix members.
    """
    if not members:
        raise ValueError("nothing to train: no members")
    dev = pick(device)
    dim = members[0].x.shape[1]
    if any(m.x.shape[1] != dim for m in members):
        raise ValueError("all members must share the input dimension")
    seeds = [m.seed for m in members]
    model = BatchedMLP(dim, width, depth, seeds, device=dev)
    M, B, T = len(members), settings.batch_size, settings.steps

    x1 = _pad_stack([m.x for m in members], dev)
    t1 = _pad_stack([m.target.astype(np.float32) for m in members], dev)
    idx1 = _indices([m.x.shape[0] for m in members], seeds, T, B, salt=1).to(dev)
    aux = torch.tensor([m.aux_conf for m in members], device=dev)

    has2 = [m.weight2 != 0.0 for m in members]
    if any(has2):
        x2 = _pad_stack([m.x2 if h else m.x[:1] for m, h in zip(members, has2, strict=True)], dev)
        t2 = _pad_stack(
            [
                m.target2.astype(np.float32) if h else m.target[:1]
                for m, h in zip(members, has2, strict=True)
            ],
            dev,
        )
        sw2 = _pad_stack(
            [
                (
                    m.sample_weight2 if m.sample_weight2 is not None else np.ones(m.x2.shape[0])
                ).astype(np.float32)
                if h
                else np.zeros(1, np.float32)
                for m, h in zip(members, has2, strict=True)
            ],
            dev,
        )
        sizes2 = [m.x2.shape[0] if h else 1 for m, h in zip(members, has2, strict=True)]
        idx2 = _indices(sizes2, seeds, T, B, salt=2).to(dev)
        w2 = torch.tensor([m.weight2 for m in members], device=dev, dtype=torch.float32)
    rows = torch.arange(M, device=dev)[:, None]

    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    for step in range(T):
        i1 = idx1[step]
        xb, tb = x1[rows, i1], t1[rows, i1]
        if any(has2):
            i2 = idx2[step]
            logits = model(torch.cat([xb, x2[rows, i2]], dim=1))
            logit1, logit2 = logits[:, :B], logits[:, B:]
        else:
            logit1 = model(xb)
        c = aux_conf_coefficient(step, T, settings.aux_max, settings.aux_warmup)
        if c > 0 and bool(aux.any()):
            hard = _harden(logit1.detach(), tb)
            mix = torch.where(aux[:, None], (1 - c) * tb + c * hard, tb)
        else:
            mix = tb
        loss = F.binary_cross_entropy_with_logits(logit1, mix, reduction="none").mean(dim=1)
        if any(has2):
            l2 = F.binary_cross_entropy_with_logits(logit2, t2[rows, i2], reduction="none")
            loss = loss + w2 * (sw2[rows, i2] * l2).mean(dim=1)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    model.eval()
    return model


# --------------------------------------------------------------------------------------
# One experiment: weak supervisor, ceiling, students (direct and bootstrapped)
# --------------------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    """Test-set probabilities of every model of one experiment, keyed by role.

    Roles: ``weak``, ``ceiling``, ``student`` (weak-labelled, no conflict), ``conflict``
    (weak-labelled, with the configured conflict; absent when ``conflict == "none"``),
    and with bootstrapping ``intermediate`` (trained on weak labels, no conflict),
    ``boot_student`` and ``boot_conflict`` (strong students on the intermediate's labels). ``weak_w2s_acc`` is the weak supervisor's label
    accuracy on the w2s split.
    """

    proba: dict[str, np.ndarray]
    weak_w2s_acc: float


class Ladder:
    """Views of one dataset through each rung, cached per (rung, split)."""

    def __init__(self, data: W2SData, seed: int) -> None:
        self.data, self.seed = data, int(seed)
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def view(self, name: str, split: str) -> np.ndarray:
        key = (name, split)
        if key not in self._cache:
            r = rung(name)
            s = self.data.split(split)
            mask = self.data.visible_mask(r.visible_groups)
            split_id = ("gold", "w2s", "help", "test").index(split)
            self._cache[key] = perceive(s.x, mask, r.noise, (self.seed, 0x77, r.index, split_id))
        return self._cache[key]


def _secondary(ladder: Ladder, name: str, conflict: str, alpha: float, help_weight: float) -> dict:
    help_ = ladder.data.help
    if conflict == "none":
        return {}
    if conflict == "implicit":
        return {
            "x2": ladder.view(name, "help"),
            "target2": help_.y_helpful.astype(np.float32),
            "weight2": help_weight,
        }
    if conflict == "explicit":
        return {
            "x2": ladder.view(name, "help"),
            "target2": (1 - help_.y_harmless).astype(np.float32),
            "sample_weight2": help_.conflict.astype(np.float32),
            "weight2": alpha,
        }
    raise ValueError(f"unknown conflict {conflict!r}; valid: {', '.join(CONFLICTS)}")


def run_experiment(
    data: W2SData,
    weak: str,
    strong: str,
    conflict: str = "implicit",
    intermediate: str | None = None,
    alpha: float = 0.5,
    help_weight: float = 0.5,
    aux_conf: bool = False,
    settings: TrainSettings = TrainSettings(),
    seed: int = 0,
    device: str | torch.device = "auto",
) -> ExperimentResult:
    """Weak supervisor, strong ceiling and weak-to-strong students on ``data``.

    Stages (each one batched model): (1) the weak supervisor on gold labels; (2) the
    strong rung's ceiling (gold), no-conflict student and conflict student together,
    then, with ``intermediate``, the intermediate rung on weak labels; (3) the strong
    bootstrapped students (no conflict and conflict) on the intermediate's labels.
    """
    if conflict not in CONFLICTS:
        raise ValueError(f"unknown conflict {conflict!r}; valid: {', '.join(CONFLICTS)}")
    w, s = rung(weak), rung(strong)
    if s.index <= w.index:
        raise ValueError(f"strong rung {strong!r} must be above weak rung {weak!r} on the ladder")
    if intermediate is not None:
        i = rung(intermediate)
        if not w.index < i.index < s.index:
            raise ValueError(
                f"intermediate rung {intermediate!r} must lie strictly between {weak!r} and {strong!r}"
            )
    dev = pick(device)
    ladder = Ladder(data, seed)
    gold, w2s = data.gold, data.w2s
    sub = np.random.SeedSequence([int(seed), 0x5EED]).generate_state(8)
    proba: dict[str, np.ndarray] = {}

    weak_model = train_members(
        [Member(ladder.view(weak, "gold"), gold.y_harmless.astype(np.float32), seed=int(sub[0]))],
        w.width,
        w.depth,
        settings,
        dev,
    )
    proba["weak"] = weak_model.predict_proba(ladder.view(weak, "test"))[0]
    weak_labels = weak_model.predict_proba(ladder.view(weak, "w2s"))[0]
    weak_w2s_acc = float(np.mean((weak_labels > 0.5) == w2s.y_harmless))

    def students(
        name: str, labels: np.ndarray, conflict_labels: np.ndarray, seed_a: int, seed_b: int
    ) -> list[Member]:
        xs = ladder.view(name, "w2s")
        out = [Member(xs, labels, seed=seed_a, aux_conf=aux_conf)]
        if conflict != "none":
            out.append(
                Member(
                    xs,
                    conflict_labels,
                    seed=seed_b,
                    aux_conf=aux_conf,
                    **_secondary(ladder, name, conflict, alpha, help_weight),
                )
            )
        return out

    ceiling = Member(
        ladder.view(strong, "gold"), gold.y_harmless.astype(np.float32), seed=int(sub[1])
    )
    strong_model = train_members(
        [ceiling, *students(strong, weak_labels, weak_labels, int(sub[2]), int(sub[3]))],
        s.width,
        s.depth,
        settings,
        dev,
    )
    p = strong_model.predict_proba(ladder.view(strong, "test"))
    proba["ceiling"], proba["student"] = p[0], p[1]
    if conflict != "none":
        proba["conflict"] = p[2]

    if intermediate is not None:
        # The intermediate learns from the weak labels without conflict (it is the better
        # supervisor); the conflict enters once, at the strong stage, as on the direct path.
        i = rung(intermediate)
        mid = train_members(
            [
                Member(
                    ladder.view(intermediate, "w2s"),
                    weak_labels,
                    seed=int(sub[4]),
                    aux_conf=aux_conf,
                )
            ],
            i.width,
            i.depth,
            settings,
            dev,
        )
        proba["intermediate"] = mid.predict_proba(ladder.view(intermediate, "test"))[0]
        mid_labels = mid.predict_proba(ladder.view(intermediate, "w2s"))[0]
        boot = train_members(
            students(strong, mid_labels, mid_labels, int(sub[6]), int(sub[7])),
            s.width,
            s.depth,
            settings,
            dev,
        )
        pb = boot.predict_proba(ladder.view(strong, "test"))
        proba["boot_student"] = pb[0]
        if conflict != "none":
            proba["boot_conflict"] = pb[1]
    return ExperimentResult(proba=proba, weak_w2s_acc=weak_w2s_acc)
