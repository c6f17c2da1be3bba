"""Torch device choice shared by every learner.

Learners take a ``device`` argument (default ``"auto"``) and resolve it here, so one flag
moves a whole study to the GPU and tests can pin everything to the CPU.
"""

from __future__ import annotations

import torch

VALID = ("auto", "cpu", "cuda", "mps")


def pick(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA, then MPS, then CPU; validate an explicit choice.

    ``"cuda:1"`` style indices are accepted. Asking for an accelerator that is absent is an
    error rather than a silent fallback, so a GPU run never quietly becomes a CPU run.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":", 1)[0]
    if kind not in VALID:
        raise ValueError(f"device {device!r} is not one of {', '.join(VALID)} (or 'cuda:N')")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'"
        )
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"device {device!r} requested but MPS is not available; use 'cpu' or 'auto'"
            )
    return torch.device(name)
