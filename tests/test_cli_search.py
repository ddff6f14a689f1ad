"""`find --text` on the seed library: web search syntax ("quoted phrase", OR, -word) finds the same studies
on SQLite (FTS5) and PostgreSQL (tsvector), and no text a user can type is a database error.

Every test runs on both backends (conftest) against the same expected citekeys, so a pass on both is
the proof that the two agree. Words are chosen whose stems FTS5's Porter stemmer and PostgreSQL's English
Snowball stemmer agree on ("randomized" does not: Snowball also stems "randomly" to "random").
"""

from __future__ import annotations

import json

from tests.helpers import run

GUA_SHA = {
    "braun2011effectiveness",
    "kwong2009bioluminescence",
    "lauche2012randomized",
    "nielsen2007effect",
    "saha2019gua",
}
GRASTON = {"crothers2016spinal", "schaefer2012effects", "son2018effect", "stanek2018comparison"}
KNEE = {"jafarsalehi2025exploring", "loghmani2009instrument", "loghmani2013instrument", "markovic2015acute"}
RATS = {"bove2012visceral", "davidson1997rat", "sevier2015astym"}
SOCCER = {"kim2018instrument", "markovic2015acute"}


def found(text: str, *extra: str) -> list[str]:
    result = run("find", "--text", text, *extra, "--format", "json")
    assert result.stderr in ("", "no studies match\n"), result.stderr
    return [s["citekey"] for s in json.loads(result.stdout)]


def test_a_quoted_phrase_is_the_words_in_that_order() -> None:
    soft_tissue = set(found('"soft tissue"'))
    assert len(soft_tissue) == 31 and "loghmani2021soft" in soft_tissue
    assert found('"tissue soft"') == []
    assert set(found('"gua sha"')) == set(found("gua sha")) == GUA_SHA
    assert set(found('"lateral epicondylitis"')) == {"blanchette2011augmented"}
    # Stop words inside a phrase keep their place; at its ends they are left out, as PostgreSQL does.
    assert set(found('"range of motion"')) == set(found('"the range of motion"'))
    assert found('"of the"') == [] and found("the") == []


def test_or_offers_alternatives_and_binds_loosest() -> None:
    assert set(found("tendon OR fascia")) == {"davidson1997rat", "langevin2011reduced"}
    assert set(found('graston OR "gua sha"')) == GRASTON | GUA_SHA
    assert set(found("plantar OR achilles OR epicondylitis")) == {
        "blanchette2011augmented",
        "jones2019instrument",
        "mccormack2016eccentric",
        "yana2025acute",
    }
    # (rats and visceral) or soccer, as websearch_to_tsquery reads it: not rats and (visceral or soccer).
    assert set(found("rats visceral OR soccer")) == {"bove2012visceral"} | SOCCER
    # Only the capitalised word is the operator: "or" is a (stop) word, so this needs rats and soccer.
    assert found("rats or soccer") == []
    assert set(found("knee OR")) == set(found("OR knee OR OR")) == KNEE


def test_a_leading_dash_excludes_a_term() -> None:
    assert set(found("rats -visceral")) == RATS - {"bove2012visceral"}
    assert set(found('"soft tissue" -instrument')) == {
        "blanchette2011augmented",
        "davidson1997rat",
        "gehlsen1999fibroblast",
        "hammer2008effect",
        "loghmani2021soft",
        "mccormack2016eccentric",
        "sevier2015astym",
    }
    assert set(found('rats -"visceral mobilization"')) == RATS - {"bove2012visceral"}
    assert set(found("IASTM -graston")) == set(found("IASTM")) - GRASTON
    assert found("knee -knee") == []
    # A dash inside a word joins it to the next one (a phrase), it excludes nothing.
    assert found("instrument-assisted") == found('"instrument assisted"')


def test_only_excluded_terms_match_nothing() -> None:
    # "Everything but X" is not a search: it matches nothing (exit 0), on both backends alike.
    result = run("find", "--text", "-graston")
    assert result.stdout == "" and result.stderr == "no studies match\n"
    assert found("-graston -rats") == []
    assert set(found("graston OR -rats")) == GRASTON  # the alternative with nothing required drops out


def test_relevance_puts_a_title_match_first_and_honours_limit() -> None:
    run("db", "init", "--empty")
    run("add", "--title", "Another study of the forearm", "--author", "Roe, R", "--year", "2020")
    note = (
        "Mentions zygomatic scraping once, in a long note about other things that have nothing to do with it."
    )
    run("note", "roe2020another", "-m", note)
    run("add", "--title", "Zygomatic scraping", "--author", "Doe, J", "--year", "2019")
    # Higher is better on PostgreSQL (ts_rank_cd), lower on SQLite (bm25): either way the title first.
    assert found("zygomatic") == ["doe2019zygomatic", "roe2020another"]
    assert found("zygomatic", "--limit", "1") == ["doe2019zygomatic"]
    assert found("zygomatic", "--sort", "year") == ["roe2020another", "doe2019zygomatic"]


def test_relevance_order_is_stable_and_limit_takes_its_head() -> None:
    everything = found("instrument")
    assert len(everything) == 27 and found("instrument") == everything
    assert found("instrument", "--limit", "5") == everything[:5]
    # With another filter the ranking happens after the join; the order of what is left is the same.
    after_2015 = set(found("instrument", "--year-from", "2015"))
    assert found("instrument", "--year-from", "2015") == [k for k in everything if k in after_2015]


NO_WORDS = [
    '"',
    '""',
    '" "',
    "-",
    '-"',
    "OR",
    "OR OR",
    "*",
    ":",
    "&|!",
    "\\",
    "()",
    "^",
    "²",
    "-" * 10_000,
    '"' * 10_000,
    "- OR -",
]


def test_text_without_words_is_one_line_error() -> None:
    for text in NO_WORDS:
        result = run("find", "--text", text, expect=1)
        assert result.stdout == "", text
        assert result.stderr.startswith("Error: --text "), text
        assert result.stderr.endswith(" has no words to search for\n"), text
        assert result.stderr.count("\n") == 1 and len(result.stderr) < 160, text  # a long text is cut


ODD = [
    "x" * 10_000,
    "пример",
    "中文",
    "NEAR(knee shoulder)",
    "knee:shoulder",
    'knee "" shoulder',
    "title:knee",
]
LIKE_KNEE = [
    '"knee',
    'knee"',
    "knee*",
    "knee:*",
    "^knee",
    "(knee)",
    "!knee",
    "knee&|!",
    "knee -",
    "- knee",
    "knee\\",
    "\\knee",
    "knee's",
    "KNEE",
    "knee OR OR",
    "knee 🙂",
    "\u202eknee",
    "knee\u0301",
    "knee\tknee",
    "knee " * 2_000,
    ("knee OR " * 1_300)[:10_000],
    ("knee " + "-zzz " * 2_000)[:10_000],
]


def test_operators_and_punctuation_are_never_a_database_error() -> None:
    for text in LIKE_KNEE:
        assert set(found(text)) == KNEE, text
    for text in ODD:
        assert found(text) == [], text


def test_a_word_after_a_slash_is_found_on_both_backends() -> None:
    # "scar-tissue/adhesion": PostgreSQL's parser would read it as one file path without the migration's
    # translate(); FTS5 splits it anyway.
    assert "cheatham2016efficacy" in found("adhesion")
