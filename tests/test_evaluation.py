"""Evaluation statistics (DESIGN §1, §8): Pass@k mean/variance, unbiased pass@k, CI, CSV."""

from __future__ import annotations

import csv
import json
import math
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.evaluation import (
    EVAL_CSV,
    EVAL_JSON,
    ci95_bootstrap,
    ci95_normal,
    pass_at_k_unbiased,
    score_stats,
    summarize,
)


def _episodes(scores):
    return [
        [
            {
                "score": s,
                "correct": s > 0,
                "response_tokens": 10 + i,
                "policy_tokens": 5 + i,
                "consult_attempts": int(i == 0),
                "answered": True,
            }
            for i, s in enumerate(row)
        ]
        for row in scores
    ]


def test_pass_at_k_mean_and_variance_by_hand():
    scores = [[1, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
    # per problem means 0.25, 0.75, 0 ; population variances 0.1875, 0.1875, 0
    stats = score_stats(scores)
    assert stats["score_mean"] == pytest.approx((0.25 + 0.75 + 0.0) / 3)
    assert stats["score_variance"] == pytest.approx((0.1875 + 0.1875 + 0.0) / 3)
    assert stats["num_problems"] == 3


def test_fractional_scores_variance():
    stats = score_stats([[0.5, 1.0], [0.0, 0.0, 0.3]])
    m1, m2 = 0.75, 0.1
    v1 = ((0.5 - m1) ** 2 + (1 - m1) ** 2) / 2
    v2 = (2 * (0 - m2) ** 2 + (0.3 - m2) ** 2) / 3
    assert stats["score_mean"] == pytest.approx((m1 + m2) / 2)
    assert stats["score_variance"] == pytest.approx((v1 + v2) / 2)


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of k-subsets of n samples (c correct) holding at least one correct one."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 1, 1), (5, 2, 3), (6, 3, 2), (8, 1, 8), (7, 5, 2), (4, 4, 1)])
def test_unbiased_pass_at_k_matches_formula_and_brute_force(n, c, k):
    formula = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    got = pass_at_k_unbiased(n, c, k)
    assert got == pytest.approx(formula, abs=1e-12)
    assert got == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_unbiased_pass_at_k_property(nck):
    n, c, k = nck
    got = pass_at_k_unbiased(n, c, k)
    assert 0.0 <= got <= 1.0
    assert got == pytest.approx(1.0 - math.comb(n - c, k) / math.comb(n, k), abs=1e-9)
    if k == 1:
        assert got == pytest.approx(c / n)


def test_unbiased_pass_at_k_edges():
    assert pass_at_k_unbiased(10, 0, 10) == 0.0
    assert pass_at_k_unbiased(10, 1, 10) == 1.0  # every k-subset is all samples
    assert pass_at_k_unbiased(3, 3, 1) == 1.0
    with pytest.raises(ValueError):
        pass_at_k_unbiased(3, 1, 4)  # k > n
    with pytest.raises(ValueError):
        pass_at_k_unbiased(3, 4, 1)  # c > n
    with pytest.raises(ValueError):
        pass_at_k_unbiased(3, 1, 0)


def test_confidence_intervals():
    vals = [0.0, 0.25, 0.5, 0.75, 1.0] * 8
    lo, hi = ci95_bootstrap(vals)
    m = float(np.mean(vals))
    assert lo < m < hi
    nlo, nhi = ci95_normal(vals)
    half = 1.96 * np.std(vals, ddof=1) / math.sqrt(len(vals))
    assert (nlo, nhi) == pytest.approx((m - half, m + half))
    assert abs((hi - lo) - (nhi - nlo)) < 0.1  # the two agree roughly at n = 40
    assert ci95_bootstrap([0.5]) == (0.5, 0.5)
    assert ci95_bootstrap(vals, seed=3) == ci95_bootstrap(vals, seed=3)


def test_summarize_and_csv(tmp_path):
    scores = [[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]]
    res = summarize(["a", "b", "c"], _episodes(scores), k=4, pass_ks=(1, 2, 4))
    assert res.score_mean == pytest.approx(0.5)
    assert res.score_variance == pytest.approx((0.25 + 0 + 0) / 3)
    assert res.pass_at["1"] == pytest.approx(0.5)
    assert res.pass_at["2"] == pytest.approx(((1 - 1 / 6) + 1 + 0) / 3)
    assert res.pass_at["4"] == pytest.approx(2 / 3)
    assert res.consult_attempt_rate == pytest.approx(0.25)
    assert res.expert_call_rate == 0.0
    assert res.response_tokens == pytest.approx(11.5)
    res.write(tmp_path)
    rows = list(csv.DictReader((tmp_path / EVAL_CSV).open()))
    assert [r["problem_id"] for r in rows] == ["a", "b", "c"]
    assert float(rows[0]["mean_score"]) == 0.5 and float(rows[0]["variance"]) == 0.25
    assert float(rows[0]["pass@2"]) == pytest.approx(5 / 6, abs=1e-5)
    assert {"n", "correct", "pass@1", "pass@4", "response_tokens", "policy_tokens", "consult_attempts"} <= set(rows[0])
    summary = json.loads((tmp_path / EVAL_JSON).read_text())
    assert summary["accuracy"] == summary["score_mean"] == 0.5
    assert len(summary["ci95"]) == 2


def test_evaluate_rolls_out_through_the_vector_env(tmp_path):
    """``evaluate`` on a built policy: chunks of the vector env (a smaller last one), consultation off."""
    import torch

    from agents.evaluation import EvalConfig, evaluate
    from agents.policy import build_policy, load_policy

    torch.set_num_threads(1)
    model, tok = load_policy(
        build_policy(tmp_path / "policy", "tiny", sft_steps=0, n_train=50, n_heldout=0, verbose=False)
    )
    kw = dict(k=2, num_problems=3, batch_episodes=4, max_turns=2, max_turn_tokens=8, max_total_tokens=400, seed=1)
    settings = EvalConfig(**kw)
    res = evaluate(model, tok, "generated:arithmetic:1", settings)  # 6 episodes: chunks of 4 and 2
    assert [p.n for p in res.problems] == [2, 2, 2]
    assert res.expert_call_rate == 0.0  # the eval env never calls an expert
    again = evaluate(model, tok, "generated:arithmetic:1", settings)
    assert again.summary() | {"seconds": 0} == res.summary() | {"seconds": 0}  # seeded: the same episodes
