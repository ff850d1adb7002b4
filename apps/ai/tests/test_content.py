"""The pure rules: brief validation, the prompt, robust parsing, variant validation, and
the offline provider's copy."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.ai import content
from apps.ai.content import Brief, parse_reply
from apps.ai.models import Tone
from apps.ai.providers import CompletionRequest, OfflineProvider, parse_retry_after

BRIEF = Brief(prompt="New dark mode", tone="friendly", n=2)
TWO = [{"title": "Dark mode is here", "subtitle": "Easy on the eyes."}, {"title": "Go dark", "subtitle": "Try the new theme tonight."}]  # fmt: skip


# --- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reply",
    [
        json.dumps({"variants": TWO}),
        "```json\n" + json.dumps({"variants": TWO}) + "\n```",
        "Here you go!\n" + json.dumps({"variants": TWO}) + "\nHope that helps.",
        "Sure:\n```\n" + json.dumps(TWO) + "\n```",
        json.dumps({"notifications": TWO}),
        json.dumps({"variants": [{"title": t["title"], "body": t["subtitle"]} for t in TWO]}),
    ],
    ids=["plain", "fenced", "prose", "bare-list", "other-key", "body-synonym"],
)
def test_replies_are_parsed_robustly(reply):
    outcome = parse_reply(reply, BRIEF)
    assert outcome.problems == []
    assert [v.as_dict() for v in outcome.variants] == TWO


def test_extra_variants_are_dropped_and_whitespace_is_cleaned():
    reply = json.dumps({"variants": [{"title": "  Go\n dark ", "subtitle": '"Try it."'}, *TWO]})
    outcome = parse_reply(reply, BRIEF)
    assert [v.as_dict() for v in outcome.variants] == [
        {"title": "Go dark", "subtitle": "Try it."},
        TWO[0],
    ]


@pytest.mark.parametrize(
    ("variant", "problem"),
    [
        ({"title": "", "subtitle": "x"}, "title is empty"),
        ({"title": "x" * 66, "subtitle": "x"}, "title has 66 characters (limit 65)"),
        ({"title": "Hi", "subtitle": "y" * 241}, "subtitle has 241 characters (limit 240)"),
        ({"title": "<b>Hi</b>", "subtitle": "x"}, "title contains HTML"),
        ({"title": "**Hi**", "subtitle": "x"}, "title contains Markdown"),
        ({"title": "Hi", "subtitle": "[tap](https://x.io)"}, "subtitle contains Markdown"),
        ({"title": "Hi\x07", "subtitle": "x"}, "title contains control characters"),
        ({"title": 5, "subtitle": "x"}, "needs string title and subtitle"),
    ],
)
def test_invalid_variants_are_reported(variant, problem):
    outcome = parse_reply(json.dumps({"variants": [variant]}), Brief("p", "friendly"))
    assert outcome.variants == []
    assert any(problem in p for p in outcome.problems), outcome.problems


@pytest.mark.parametrize("reply", ["", "I cannot help with that.", '{"variants": [{"title": "x"'])
def test_no_json_is_a_problem(reply):
    outcome = parse_reply(reply, BRIEF)
    assert outcome.variants == [] and outcome.problems


def test_duplicates_do_not_count_towards_n():
    reply = json.dumps({"variants": [TWO[0], TWO[0]]})
    outcome = parse_reply(reply, BRIEF)
    assert outcome.variants == []
    assert "variant 2 repeats an earlier one" in outcome.problems


# --- brief and prompt -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * (content.MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"tone": "sarcastic"}, "tone"),
        ({"n": 0}, "n"),
        ({"n": 6}, "n"),
        ({"language": "english please"}, "language"),
        ({"max_title": 19}, "max_title"),
        ({"max_subtitle": 501}, "max_subtitle"),
    ],
)
def test_brief_errors(changes, field):
    brief = Brief(**{"prompt": "A sale", "tone": "urgent", **changes})
    assert field in content.brief_errors(brief)


def test_every_tone_has_a_style_note_in_the_prompt():
    for tone in Tone.values:
        system = content.build_messages(Brief("A sale", tone))[0]["content"]
        assert f"Tone: {tone} (" in system


def test_language_instruction():
    with_tag = content.build_messages(Brief("Oferta", "friendly", language="pt-BR"))[0]
    without = content.build_messages(Brief("Oferta", "friendly"))[0]
    assert "'pt-BR'" in with_tag["content"]
    assert "same language as the brief" in without["content"]


# --- Retry-After ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers) == expected


# --- offline provider -------------------------------------------------------------------------
def offline(brief: Brief):
    text = OfflineProvider().complete(CompletionRequest(brief, [])).text
    return parse_reply(text, brief)


def test_offline_copy_reads_like_a_notification():
    brief = Brief(
        "Write a push about our summer sale: 30% off all shoes until Sunday", "friendly", n=3
    )
    outcome = offline(brief)
    assert outcome.problems == []
    for variant in outcome.variants:
        assert "Our summer sale" in variant.title
        assert variant.subtitle.startswith("Our summer sale: 30% off all shoes until Sunday.")
        assert "Write a push" not in variant.title + variant.subtitle


def test_offline_speaks_to_the_reader():
    (variant,) = offline(Brief("Remind users to update their app", "informative")).variants
    assert "Update your app" in variant.title + variant.subtitle


def test_offline_is_deterministic():
    brief = Brief("Concert tickets on sale Friday", "urgent", n=5)
    assert offline(brief).variants == offline(brief).variants


@settings(max_examples=150, deadline=None)
@given(
    prompt=st.text(min_size=1, max_size=content.MAX_PROMPT_CHARS).filter(str.strip),
    tone=st.sampled_from(Tone.values),
    n=st.integers(content.MIN_VARIANTS, content.MAX_VARIANTS),
    max_title=st.integers(*content.TITLE_LIMIT_BOUNDS),
    max_subtitle=st.integers(*content.SUBTITLE_LIMIT_BOUNDS),
)
def test_offline_always_passes_validation(prompt, tone, n, max_title, max_subtitle):
    brief = Brief(prompt.strip(), tone, n, None, max_title, max_subtitle)
    outcome = offline(brief)
    assert outcome.problems == []
    assert len(outcome.variants) == n
