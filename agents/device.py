"""The one device rule of the learner: ``auto`` means CUDA when present, else CPU, everywhere.

Every place that turns a config or command-line device string into a ``torch.device`` (training,
evaluation, baselines, loading a policy, the process group, Ray actors' GPU requests) calls
:func:`pick_device`, so ``device = "auto"`` on a GPU machine trains *and* evaluates on the GPU.

Example:
    >>> from agents.device import pick_device
    >>> pick_device("cpu")
    device(type='cpu')
    >>> pick_device("auto").type in ("cpu", "cuda")
    True
"""

from __future__ import annotations

import torch

AUTO = "auto"


def pick_device(name: str | torch.device) -> torch.device:
    """``"auto"`` -> ``cuda`` if ``torch.cuda.is_available()`` else ``cpu``; anything else as given."""
    if isinstance(name, torch.device):
        return name
    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
