"""`evidence cite` on the whole seed library (plus one study with an organisation as author), in AMA,
Vancouver and APA, against golden files in tests/golden/ that were read entry by entry against the
manuals. The cases the manuals settle, and where each is in the files:

AMA Manual of Style, 11th ed., ch. 3, References (american-medical-association):
* more than six authors: the first three, then "et al": lauche2012randomized, langevin2011reduced
  "Langevin HM, Fox JR, Koptiuch C, et al."; six or fewer all listed: burke2007pilot (six).
* organisation as author: its name as given, not inverted: the added "IASTM Evidence Working Group".
* article number (eLocator) in place of pages: langevin2011reduced "2011;12:203",
  sevier2015astym "2015;3:e967".
* issue without volume, for a journal numbered by issue: kwong2009bioluminescence
  "2009;(30):1385"; jones2019instrument and syeda2021immediate keep "(3):193-200" / "(1):1-7" (their
  volume was never seen: the seed marks it).
* supplement: "suppl" and its number in the issue position: loghmani2021soft "2021;(suppl 1):506-514"
  (was the raw "Supplement_1").
* neither volume nor pages, with a DOI: "Published online YEAR. doi:" (the form for an article cited
  before its issue): tang2024effectiveness (was "2024;(1)."), gunn2019instrument, yana2025acute.
* neither volume nor pages nor DOI: the year alone, never "Published online" (we do not know it was):
  blanchette2011augmented "Journal of Manipulative and Physiological Therapeutics. 2011."
* page ranges in full with a hyphen: bayliss2011treatment "127-134".
Vancouver (ICMJE; NLM Citing Medicine, 2nd ed., ch. 1):
* up to six authors, then "et al.": lauche2012randomized lists six and "et al."; burke2007pilot six.
* organisation as author as given; article numbers in the pagination place ("2011;12:203"); issue without
  volume "2009;(30):1385"; supplement "2021;(Suppl 1):506-14"; missing volume and pages: the year alone.
* page ranges with a hyphen, the last page shortened: "2011;19(3):127-34".
APA Publication Manual, 7th ed., ch. 9 and 10, reference list and journal article examples:
* up to 20 authors all listed, "&" before the last: langevin2011reduced lists all ten.
* organisation as author: "IASTM Evidence Working Group. (2020).".
* article number: "12, Article 203" for every seed study whose locator is an article number.
* supplement "(Suppl. 1)"; missing volume, issue or pages are left out: tang2024effectiveness ends
  with the journal name and the DOI; page ranges with an en dash "127\u2013134".

Section numbers are left out on purpose: the rules were read in the manuals' chapters named above, and a
number quoted from memory would be worse than none. The style corrections behind these (supplements,
lone issues, AMA "Published online", the NLM hyphen, author-date order) are in evidence/formats/cite.py;
they change what goes into citeproc-py, never its output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_formats_cite import check_golden

from cli import cli

GOLDEN = Path(__file__).parent / "golden"
STYLES = {
    "american-medical-association": "seed_ama.txt",
    "vancouver": "seed_vancouver.txt",
    "apa": "seed_apa.txt",
}


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def add_organisation_study() -> None:
    run(
        "add",
        "--title",
        "Instrument-assisted soft tissue mobilisation: a test record with an organisation as author",
        "--author",
        "IASTM Evidence Working Group",
        "--journal",
        "Journal of Test Records",
        "--year",
        "2020",
        "--volume",
        "4",
        "--issue",
        "2",
        "--pages",
        "101-109",
        "--design",
        "narrative-review",
    )


@pytest.mark.parametrize("style", list(STYLES))
def test_the_seed_library_matches_the_golden_bibliography(style: str) -> None:
    add_organisation_study()
    result = run("cite", "--sort", "title", "--style", style)
    assert result.stderr == ""
    check_golden(STYLES[style], result.stdout, GOLDEN)


def test_the_cases_the_manuals_settle() -> None:
    add_organisation_study()
    ama, vancouver, apa = (run("cite", "--sort", "title", "--style", s).stdout for s in STYLES)
    assert "Military Medicine. 2021;(suppl 1):506-514." in ama
    assert "Military Medicine. 2021;(Suppl 1):506-14." in vancouver
    assert "Military Medicine, (Suppl. 1), 506\u2013514." in apa
    assert "Supplement_1" not in ama + vancouver + apa
    assert "Journal of Manipulative and Physiological Therapeutics. 2011.\n" in ama
    assert "BMC Musculoskeletal Disorders. Published online 2024. doi:10.1186/s12891-024-07452-8" in ama
    assert ";(1)." not in ama and ";(1)." not in vancouver
    assert "BMC Musculoskeletal Disorders. 2011;12:203." in ama
    assert "BMC Musculoskeletal Disorders, 12, Article 203." in apa
    assert "IASTM Evidence Working Group. Instrument-assisted" in ama
    assert "IASTM Evidence Working Group. (2020)." in apa
    assert "Langevin HM, Fox JR, Koptiuch C, et al." in ama
    assert "Bouffard NA, et al." in vancouver
    assert "Triano, J. J., & Henry, S. M. (2011)." in apa
    assert "2011;19(3):127-34." in vancouver
    # APA: same first author, compared name by name (Sung before Yim, Tobin before Warden), not as one string.
    assert apa.index("Kim, J., Sung, D. J.") < apa.index("Kim, J., & Yim, J.")
    assert apa.index("Loghmani, M. T., Tobin, C.") < apa.index("Loghmani, M. T., & Warden, S. J. (2009)")
    for text in (ama, vancouver):  # every study once, numbered 1..n
        numbers = [int(n) for n in re.findall(r"^(\d+)\. ", text, flags=re.MULTILINE)]
        assert numbers == list(range(1, 51))


def test_by_claim_numbers_each_study_once_in_first_cited_order() -> None:
    for style in ("american-medical-association", "vancouver"):
        text = run("cite", "--by-claim", "--style", style).stdout
        seen: dict[str, int] = {}
        next_new = 1
        for section in re.split(r"\n(?=\S[^\n]*\n[=-]+\n)", text):
            numbers = [int(n) for n in re.findall(r"^(\d+)\. ", section, flags=re.MULTILINE)]
            assert numbers == sorted(numbers)  # within a group: ascending
            for line in re.findall(r"^(\d+)\. (.*)$", section, flags=re.MULTILINE):
                number, entry = int(line[0]), line[1]
                if entry in seen:
                    assert seen[entry] == number  # the same study keeps its number
                else:
                    assert number == next_new  # a new study takes the next number
                    seen[entry] = number
                    next_new += 1
        assert len(seen) == next_new - 1 == 49
