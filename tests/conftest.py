"""Shared test fixtures: spy experts and env factories."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, settings

from eapo_env.experts import ExpertReply, ExpertRequest, SyncExpert

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=25)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


class SpyExpert(SyncExpert):
    """Records every request it receives; replies ``"spy:<query>"``."""

    name = "spy"

    def __init__(self) -> None:
        self.calls: list[list[ExpertRequest]] = []

    @property
    def requests(self) -> list[ExpertRequest]:
        return [r for batch in self.calls for r in batch]

    def consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        self.calls.append(list(requests))
        return [ExpertReply(text=f"spy:{r.query}", expert="spy") for r in requests]


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
