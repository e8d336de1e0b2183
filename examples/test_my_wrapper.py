"""Your wrapper and its property test (``pip install 'eapo[testing]'``; run: ``pytest examples/test_my_wrapper.py``)."""

import eapo_env  # noqa: F401  (registers the ids)
from eapo_env.testing import check_eapo_env
from wrappers import TurnWrapper


class BrevityBonus(TurnWrapper):
    """Pays 0.1 more for a correct answer written in under 40 characters."""

    def outcome(self, outcome, plan):
        short = outcome.correct and len(plan.action) < 40
        return outcome.penalized("brevity_bonus", -0.1) if short else outcome


def test_brevity_bonus_keeps_the_env_contract():
    check_eapo_env("EAPO-Math-v0", wrappers=[BrevityBonus], env_kwargs={"problems": "generated:arithmetic"})
