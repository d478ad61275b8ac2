"""TorchScript's inference form of a network: traced, frozen (weights as constants) and
optimised for inference (convs packed for oneDNN once, a conv's ReLU fused into it). Outputs
match the plain network's to about 1e-5 (the fused kernels sum in another order); each
caller checks that on an example and keeps the plain network when it cannot be built.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn


def frozen(net: nn.Module, example: torch.Tensor, tolerance: float) -> Callable | None:
    """``net`` in inference form, traced on ``example``; None if that fails or any output
    differs from the plain network's by more than ``tolerance`` on ``example``. The trace
    holds for the inputs the caller checks (a network without size-dependent branches)."""
    try:
        # TorchScript warns that it is deprecated and about traced constants. Not for users.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = net.eval()
            built = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, example,
                                                                                      check_trace=False)))
            expected, got = net(example), built(example)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = got if isinstance(got, tuple) else (got,)
        if len(expected) != len(got) or any(float((a - b).abs().max()) > tolerance for a, b in zip(expected, got)):
            return None
    except Exception:  # noqa: BLE001 - an optimisation: the plain network is always there
        return None
    return built
