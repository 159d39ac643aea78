"""Which torch device a run computes on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked, and what produced it.

A run names its device as text (``RunSpec.device``: it travels to processes and Ray workers, which may
have GPUs the planner has not). ``resolve_device`` turns the text into a ``torch.device`` where the run
executes: ``auto`` is the first CUDA GPU when there is one, else the CPU; ``cuda`` where there is no GPU is
a one-line error. Networks, optimizers and replay buffers live on that device; environments stay on
the CPU, and checkpoints are written and read as CPU tensors, so any device resumes any run.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from bench.errors import InvalidInput

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# fp32, or bf16 autocast: matrix products and convolutions in bfloat16, weights, optimizer state and
# reductions in fp32 (no loss scaling: bfloat16 has fp32's exponent range).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def check_device_name(name: str) -> str:
    """``name`` if it is one of ``DEVICES`` (any N), else a one-line error; availability is not checked."""
    text = str(name).strip().lower()
    if not _PATTERN.fullmatch(text):
        raise InvalidInput(f"--device must be one of {', '.join(DEVICES)}, not {name!r}")
    return text


def resolve_device(name: str) -> torch.device:
    """The device ``name`` means on this machine; a GPU that is not here is a one-line error."""
    text = check_device_name(name)
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InvalidInput(f"--device {text}: this machine has no CUDA GPU that torch {torch.__version__} can use "
                           f"(use --device cpu or auto)")
    index = int(text.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise InvalidInput(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                           f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return torch.device("cuda", index)


def check_precision(name: str, device: torch.device | None = None) -> str:
    """``name`` if it is one of ``PRECISIONS`` (and, given a GPU, one it computes in), else a one-line error."""
    if name not in PRECISIONS:
        raise InvalidInput(f"--precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "bf16" and device is not None and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidInput(f"--precision bf16: {torch.cuda.get_device_name(device)} does not compute in bfloat16")
    return name


def random_rows(low: int, high: int, n: int, generator: torch.Generator | None,
                device: torch.device) -> torch.Tensor:
    """n integers in [low, high) drawn by a CPU ``generator`` and moved to ``device``: a seed draws the same rows
    whatever device the data is on (runs keep CPU generators for that reason)."""
    return torch.randint(low, high, (n,), generator=generator).to(device, non_blocking=True)


def runtime_of(device: torch.device, precision: str = "fp32") -> dict[str, Any]:
    """What a run's results record about the hardware and software that produced them."""
    runtime: dict[str, Any] = {"device": str(device), "precision": precision, "torch": torch.__version__,
                               "cuda": torch.version.cuda}
    if device.type == "cuda":
        runtime["device_name"] = torch.cuda.get_device_name(device)
        runtime["cudnn"] = torch.backends.cudnn.version()
    return runtime


def rng_state(device: torch.device) -> dict[str, Any]:
    """The random state a checkpoint keeps: torch's CPU generator, and the GPU's when the run computes on one."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Any, device: torch.device) -> None:
    """Restore ``rng_state``'s; a GPU state is restored only on a GPU (a CPU resume draws its own noise there)."""
    if isinstance(state, torch.Tensor):  # checkpoints written before devices were recorded
        state = {"cpu": state}
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
