"""A third-party expert plugin used only by the tests: found through the ``eapo.experts`` entry point.

Its hand-written ``eapo_test_plugin-0.1.dist-info`` next to this package declares
``echo = eapo_test_plugin:EchoExpert``; putting ``tests/plugins`` on ``sys.path`` "installs" it.
"""

from __future__ import annotations

from collections.abc import Sequence

from eapo_env.experts import ExpertReply, ExpertRequest, SyncExpert


class EchoExpert(SyncExpert):
    """Replies ``"<prefix><query>"``; proves a plugin can be built with keyword arguments."""

    name = "echo"

    def __init__(self, prefix: str = "echo: ") -> None:
        self.prefix = prefix

    def consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        return [ExpertReply(self.prefix + r.query, expert=self.name) for r in requests]
