"""Bridges from EAPO envs to RL trainers of other libraries.

* :mod:`agents.integrations.trl` — EAPO episodes as the ``rollout_func`` of TRL's ``GRPOTrainer``
  (extra ``trl``; TRL is imported only when a rollout runs or a TRL object is built).

Importing this package imports no optional dependency.
"""

from __future__ import annotations

__all__ = ["trl"]
