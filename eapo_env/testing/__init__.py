"""Property-based testing of EAPO env semantics, for your wrappers, expert backends and tasks.

Install the extra (it brings `hypothesis <https://hypothesis.readthedocs.io>`_)::

    pip install 'eapo[testing]'

Then one call checks the contract of DESIGN §3 (determinism, evaluation never consults, p = 0 sends
nothing, rewards only on answers, the budget truncates with reward 0, ``info`` keys and types,
transcript provenance, stepping a finished episode raises, ``gym.make_vec`` ≡ N single envs) on top
of Gymnasium's ``check_env``, and names the property that failed with a minimal counterexample::

    from eapo_env.testing import check_eapo_env

    def test_my_wrapper_keeps_the_contract():
        check_eapo_env("EAPO-Math-v0", wrappers=[MyWrapper], max_examples=20)

* :func:`check_eapo_env`, :class:`EAPOEnvCheckError`, :data:`PROPERTIES` (:mod:`.checks`).
* :mod:`eapo_env.testing.strategies` — hypothesis strategies: policy turns, problems of any task,
  expert replies with faults, schedules; :mod:`eapo_env.testing.answers` — math answer renderings.
* :mod:`eapo_env.testing.experts` — spy experts that count calls: ``SpyExpert``, ``FaultyExpert``,
  ``ScriptedExpert``, ``CountingExpert``.

Nothing else in ``eapo_env`` imports this package: ``import eapo_env`` works without hypothesis.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by tests/test_testing_kit.py
    raise ImportError("eapo_env.testing needs hypothesis, an optional dependency: pip install 'eapo[testing]'") from exc

from eapo_env.testing.checks import PROPERTIES, CheckReport, EAPOEnvCheckError, check_eapo_env
from eapo_env.testing.episodes import EpisodeScript, ParityScript, assert_info_equal, play
from eapo_env.testing.experts import CountingExpert, FaultyExpert, ScriptedExpert, SpyExpert
from eapo_env.testing.strategies import GOLD, fill_gold, policy_turns

__all__ = [
    "GOLD",
    "PROPERTIES",
    "CheckReport",
    "CountingExpert",
    "EAPOEnvCheckError",
    "EpisodeScript",
    "FaultyExpert",
    "ParityScript",
    "ScriptedExpert",
    "SpyExpert",
    "assert_info_equal",
    "check_eapo_env",
    "fill_gold",
    "play",
    "policy_turns",
]
