"""One wording per verification state wherever a clinician reads it; `show` prints each field once; an
error quotes at most the first 80 characters of a value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import cli
from evidence import vocab
from evidence.textview import verification_phrase

SEED = Path(__file__).resolve().parent.parent / "data" / "studies.json"
# The other ways the seed's sources word a state; none may reach a clinician.
OTHER_WORDINGS = re.compile(
    r"VERIFIED only via|citing reference list|NOT SEEN|NOT FOUND|UNVERIFIED|NOT verified|none (found|seen)"
)


def run(*args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, (result.exit_code, result.stdout[:500], result.stderr[:500])
    return result


def seed_keys() -> list[str]:
    return [s["citekey"] for s in json.loads(SEED.read_text(encoding="utf-8"))["studies"]]


def test_every_state_has_one_wording() -> None:
    assert set(vocab.VERIFICATION_WORDS) == set(vocab.VERIFICATION)
    assert len(set(vocab.VERIFICATION_WORDS.values())) == len(vocab.VERIFICATION)
    assert verification_phrase("citing-reference") == "seen only in a citing paper's reference list"


def test_show_prints_each_field_once_and_words_states_one_way() -> None:
    for key in seed_keys():
        text = run("show", key).stdout
        labels = [line.split(":", 1)[0] for line in text.splitlines() if re.match(r"^[A-Z][A-Za-z]+:", line)]
        assert len(labels) == len(set(labels)), (key, labels)
        assert not OTHER_WORDINGS.search(text), (key, OTHER_WORDINGS.search(text))
        for mark in re.findall(r"\[(?:design )?([^\]]+)\]", text):
            if not mark.isupper():  # [RETRACTED] and the like are statuses, not verification
                assert mark in vocab.VERIFICATION_WORDS.values(), (key, mark)
    xu = run("show", "xu2011effects").stdout
    assert xu.count("Authors:") == 1
    assert "Authors:    Xu, Q Y; Yang, J S; Yang, L  [not verified]" in xu
    assert f"[{vocab.VERIFICATION_WORDS['citing-reference']}]" in xu


def test_exports_carry_the_same_wording() -> None:
    # The exports carry the curator's notes (not the states themselves): worded the same way.
    for fmt in ("ris", "bibtex", "csljson", "csv"):
        text = run("export", "--to", fmt).stdout
        assert not OTHER_WORDINGS.search(text), (fmt, OTHER_WORDINGS.search(text))
        assert "citing paper's reference list" in text


LONG = "x" * 100_000


@pytest.mark.parametrize(
    "args",
    [
        ("show", LONG),
        ("find", "--design", LONG),
        ("find", "--limit", LONG),
        ("find", "--columns", LONG),
        (f"--db=sqlite:///{LONG}", "find"),
        ("find", f"--year-from={LONG}"),
        ("add", "--doi", LONG),
        ("cite", "--style", LONG),
        ("summary", "--by", LONG),
        ("edit", "bove2012visceral", "--year", LONG),
        ("tag", "bove2012visceral", "-t", LONG),
    ],
    ids=lambda args: " ".join(a[:12] for a in args),
)
def test_an_error_quotes_at_most_80_characters_of_a_value(args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert len(result.stderr) < 600, result.stderr[:600]
    assert 60 <= max(len(run) for run in re.findall("x+", result.stderr)) <= 80
    assert re.search(r"\u2026 \(100,0\d\d characters\)", result.stderr)


def test_an_imported_value_is_quoted_short_too(tmp_path: Path) -> None:
    bib = tmp_path / "long.bib"
    bib.write_text(f"@article{{a, title={{t}}, year={{{LONG}}}}}\n", encoding="utf-8")
    result = run("import", str(bib), "--dry-run", expect=1)
    assert result.stderr.count("\n") == 1 and len(result.stderr) < 300


def test_a_long_file_path_is_named_whole(tmp_path: Path) -> None:
    """A path is what tells the user which file is wrong: CI's temporary directories pass 80 characters."""
    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    folder.mkdir()
    bib = folder / "broken.bib"
    bib.write_text("@article{x, year={2020}}\n", encoding="utf-8")
    result = run("import", str(bib), "--dry-run", expect=1)
    assert result.stderr.startswith(f"Error: {bib}:1: ")
    assert "\u2026" not in result.stderr


@pytest.mark.parametrize(
    ("key", "unseen"),
    [
        # The reference's record: "Gunn, L J [full author list not seen]"; year, volume, issue and pages
        # empty; only the DOI verified, on the publisher's page.
        ("gunn2019instrument", ("volume", "issue", "pages", "article_number")),
        # "Blanchette, M A; Normand, M C [UNVERIFIED]", journal "[UNVERIFIED]"; no volume, pages, DOI, PMID.
        ("blanchette2011augmented", ("volume", "issue", "pages", "article_number", "doi", "pmid")),
    ],
)
def test_seed_gaps_are_left_empty_and_marked_not_verified(key: str, unseen: tuple[str, ...]) -> None:
    shown = json.loads(run("show", key, "--format", "json").stdout)
    assert all(shown[field] is None for field in unseen)
    assert shown["verification"]["authors"] == "unverified"
    assert shown["verification"]["bibliographic"] == "unverified"
    assert shown["source_urls"]
    text = run("show", key).stdout
    not_verified = f"[{vocab.VERIFICATION_WORDS['unverified']}]"
    assert next(line for line in text.splitlines() if line.startswith("Authors:")).endswith(not_verified)
    assert next(line for line in text.splitlines() if line.startswith("Published:")).endswith(not_verified)
    assert f"Seen at:    {shown['source_urls'][0]}" in text
    assert "not verified" in shown["notes"] and "not found" in shown["notes"]
