"""Shared test fixtures: spy experts (the kit's :class:`SpyExpert`, re-exported) and env factories."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, settings

from eapo_env.experts import ExpertReply, ExpertRequest
from eapo_env.testing.experts import SpyExpert  # the kit's spy: one copy for users and our tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=25)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


class AsyncSpyExpert:
    """An async-only expert (no ``consult_sync``): exercises the event-loop path of the env."""

    def __init__(self) -> None:
        self.requests: list[ExpertRequest] = []

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        self.requests.extend(requests)
        return [ExpertReply(text=f"async:{r.query}", expert="async") for r in requests]


@pytest.fixture
def spy() -> SpyExpert:
    return SpyExpert()
