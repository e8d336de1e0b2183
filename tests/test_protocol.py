"""The action parser (DESIGN §3): every malformed case has a defined outcome."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from eapo_env.protocol import (
    escape_expert_text,
    parse_action,
    unescape_expert_text,
)
from eapo_env.testing.strategies import near_canonical
from eapo_env.testing.strategies import tag_soup as tag_soups

CASES = [
    # (action, kind, answer, queries, dropped, blank, format_error)
    ("just thinking", "reason", None, (), 0, 0, ""),
    ("", "reason", None, (), 0, 0, ""),
    ("<think>hmm</think> <answer> 42 </answer>", "answer", "42", (), 0, 0, ""),
    ("<answer>42", "reason", None, (), 0, 0, ""),  # unclosed
    ("42</answer>", "reason", None, (), 0, 0, ""),  # stray closer only
    ("</answer><answer>7</answer>", "answer", "7", (), 0, 0, ""),  # stray closer, then a block
    ("<answer>1 <answer>2</answer>", "answer", "2", (), 0, 0, ""),  # repeated opener: innermost
    ("<answer>1</answer><answer>2</answer>", "answer", "1", (), 0, 0, ""),  # first block wins
    ("<ANSWER>1</ANSWER>", "reason", None, (), 0, 0, ""),  # case-sensitive
    ("<answer></answer>", "answer", "", (), 0, 0, ""),
    ("<consult><query>a</query></consult>", "consult", None, ("a",), 0, 0, ""),
    ("<consult></consult>", "consult", None, (), 0, 0, "empty_consult"),
    ("<consult><query>  </query><query></query></consult>", "consult", None, (), 0, 2, "empty_consult"),
    ("<consult>no query tags</consult>", "consult", None, (), 0, 0, "empty_consult"),
    ("<consult><query>a</query><query>b", "reason", None, (), 0, 0, ""),  # consult never closed
    ("<consult><query>a</query><query>b</consult>", "consult", None, ("a",), 0, 0, ""),  # unclosed query
    (
        "<consult>" + "".join(f"<query>q{i}</query>" for i in range(5)) + "</consult>",
        "consult",
        None,
        ("q0", "q1", "q2"),
        2,
        0,
        "",
    ),
    ("<consult><query>q</query></consult><answer>5</answer>", "consult", None, ("q",), 0, 0, ""),
    ("<answer>5</answer><consult><query>q</query></consult>", "answer", "5", (), 0, 0, ""),
    ("<consult><query>x</query><answer>5</answer></consult>", "answer", "5", (), 0, 0, ""),  # closes first
    ("<consult><query><query>inner</query></query></consult>", "consult", None, ("inner",), 0, 0, ""),
]


@pytest.mark.parametrize(("action", "kind", "answer", "queries", "dropped", "blank", "error"), CASES)
def test_parse_table(action, kind, answer, queries, dropped, blank, error):
    parsed = parse_action(action, max_queries=3)
    assert parsed.kind == kind
    assert parsed.answer == answer
    assert parsed.queries == queries
    assert parsed.dropped_queries == dropped
    assert parsed.blank_queries == blank
    assert parsed.format_error == error


def test_huge_action_is_linear_time():
    import time

    action = "<consult>" + "<query>x</query>" * 200_000 + "</consult>" + "a" * 1_000_000
    start = time.perf_counter()
    parsed = parse_action(action, max_queries=3)
    assert time.perf_counter() - start < 2.0
    assert parsed.queries == ("x", "x", "x") and parsed.dropped_queries == 200_000 - 3


def test_non_str_raises_type_error():
    with pytest.raises(TypeError):
        parse_action(b"<answer>1</answer>", 3)  # type: ignore[arg-type]


tag_soup = tag_soups()  # the strategies live in eapo_env.testing (one copy, for users too)


@given(tag_soup, st.integers(1, 5))
def test_parser_total_and_consistent(action, k):
    parsed = parse_action(action, max_queries=k)
    assert parsed.kind in ("reason", "consult", "answer")
    assert len(parsed.queries) <= k
    assert all(q == q.strip() and q for q in parsed.queries)
    if parsed.kind == "consult":
        assert (parsed.format_error == "empty_consult") == (not parsed.queries)
    else:
        assert parsed.queries == () and parsed.format_error == ""
    if parsed.kind == "answer":
        assert "</answer>" in action
    if "</answer>" not in action and "</consult>" not in action:
        assert parsed.kind == "reason"


@given(st.text())
def test_escape_round_trips_and_never_leaks_a_closer(text):
    escaped = escape_expert_text(text)
    assert "</expert" not in escaped
    assert unescape_expert_text(escaped) == text


def _oracle(action: str, k: int) -> tuple:
    """DESIGN §3 read literally, by brute force: the first position where a closing tag ends a block
    that has an opener before it decides the turn; queries are read closer by closer."""
    for i in range(len(action)):
        for kind, opener, closer in (("answer", "<answer>", "</answer>"), ("consult", "<consult>", "</consult>")):
            if action.startswith(closer, i) and (j := action.rfind(opener, 0, i)) >= 0:
                body = action[j + len(opener) : i]
                if kind == "answer":
                    return ("answer", body.strip(), (), 0, 0, "")
                queries, blank, prev = [], 0, 0
                while (c := body.find("</query>", prev)) >= 0:
                    if (o := body.rfind("<query>", prev, c)) >= 0:
                        q = body[o + len("<query>") : c].strip()
                        queries.append(q) if q else None
                        blank += not q
                    prev = c + len("</query>")
                kept = tuple(queries[:k])
                return ("consult", None, kept, len(queries) - len(kept), blank, "" if kept else "empty_consult")
    return ("reason", None, (), 0, 0, "")


@settings(max_examples=1000)
@given(tag_soup, st.integers(1, 4))
def test_parser_matches_a_brute_force_reading_of_the_rules(action, k):
    assert tuple(parse_action(action, max_queries=k)) == _oracle(action, k)


@settings(max_examples=1000)
@given(near_canonical(), st.integers(1, 4))
@example("<consult><query>a<query>b</query></consult>", 3)  # a repeated opener inside the block
@example("<consult><query>a</query><query>b</query></consult>", 1)  # surplus query
@example("<consult><query> </query><query>b</query></consult>", 3)  # blank query
@example("<consult><query>a</query>b<answer>1</answer></consult>", 3)  # a block inside the block
@example("x <answer> 4 </answer>", 1)
@example("<answer>1</answer> <consult><query>a</query></consult>", 3)  # an earlier block decides
@example("<consult></consult> <consult><query>a</query></consult>", 3)
@example("<consult><query>a</query></consult> <answer>1</answer>", 3)
def test_parser_reads_the_prompt_format_and_its_near_misses_by_the_rules(action, k):
    assert tuple(parse_action(action, max_queries=k)) == _oracle(action, k)


@given(st.lists(st.one_of(st.none(), st.text(alphabet="a%s<\\/expert> ", max_size=12)), max_size=20))
def test_experts_block_is_the_documented_entries_in_order(replies):
    from eapo_env.prompts import render_experts_block
    from eapo_env.protocol import escape_expert_text

    want = (
        "\n<experts>\n"
        + "".join(
            f'<expert index="{i}" status="unavailable">unavailable</expert>\n'
            if t is None
            else f'<expert index="{i}">{escape_expert_text(t)}</expert>\n'
            for i, t in enumerate(replies, start=1)
        )
        + "</experts>\n"
    )
    assert render_experts_block(replies) == want
