from __future__ import annotations

import pytest
import torch

from sandbox.device import pick


def test_auto_prefers_cuda_when_present():
    expected = "cuda" if torch.cuda.is_available() else None
    dev = pick("auto")
    if expected:
        assert dev.type == "cuda"
    else:
        assert dev.type in ("cpu", "mps")


def test_explicit_cpu_and_errors():
    assert pick("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'tpu' is not one of auto, cpu, cuda, mps"):
        pick("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick("cuda")
