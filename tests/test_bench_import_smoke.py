"""The import benchmark's generated shapes keep their ground truth, and the script works end to end on
tiny files (no timing assertions: see tests/bench)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from evidence.formats import IMPORTERS
from tests.bench import shapes

BENCH = Path(__file__).parent / "bench"
N = 200


def read_back(tmp_path: Path, spec: shapes.ShapeFile, part: str) -> tuple[list[dict], shapes.Truth]:
    made = shapes.generate(spec, N, part, tmp_path)
    with made.path.open(encoding="utf-8") as stream:
        return list(IMPORTERS[spec.fmt](stream, str(made.path))), made.truth()


@pytest.mark.parametrize("spec", shapes.FILES, ids=lambda spec: spec.label)
def test_every_record_is_read_back_at_its_line_with_its_work_identity(
    tmp_path: Path, spec: shapes.ShapeFile
) -> None:
    identities: dict[str, set[str]] = {}
    for part in shapes.PARTS:
        studies, truth = read_back(tmp_path, spec, part)
        assert len(studies) == N
        assert [s["_line"] for s in studies] == truth.lines
        for study, work in zip(studies, truth.works, strict=True):
            identities.setdefault(work, set()).add(shapes.study_identity(study))
    if spec.shape in ("c", "d", "e", "f"):  # no identifiers to tell works apart: identities must
        assert all(len(keys) == 1 for keys in identities.values())  # every copy has its work's identity
        keys = [next(iter(keys)) for keys in identities.values()]
        assert len(keys) == len(set(keys))  # and no two works (in either part) share one


def test_shape_a_is_the_synthetic_library_of_bench_formats() -> None:
    from tests.bench import bench_formats

    assert [study for _, study in shapes.records(shapes.FILES[0], N, "main")] == list(
        bench_formats.study_dicts(N)
    )


def test_shape_d_has_only_distinct_works(tmp_path: Path) -> None:
    studies, truth = read_back(tmp_path, shapes.FILES[3], "main")
    assert truth.duplicates() == 0
    assert not any(s["doi"] or s["pmid"] for s in studies)
    identities = Counter(shapes.study_identity(s) for s in studies)
    assert identities.most_common(1)[0][1] == 1
    assert len({s["authors"][0]["family"] for s in studies}) <= len(shapes.GROUP_FAMILIES)


def test_shape_e_has_one_fifth_true_duplicates_each_a_variant(tmp_path: Path) -> None:
    studies, truth = read_back(tmp_path, shapes.FILES[4], "main")
    assert truth.duplicates() == N // 5
    first: dict[str, dict] = {}
    for study, work in zip(studies, truth.works, strict=True):
        if work not in first:
            first[work] = study
            continue
        original = first[work]
        assert (study["title"], study["authors"], study["doi"]) != (
            original["title"],
            original["authors"],
            original["doi"],
        )
        assert study["year"] == original["year"]
        assert shapes.fold(study["authors"][0]["family"]) == shapes.fold(original["authors"][0]["family"])


def test_shape_f_nbib_records_all_have_a_pmid_shared_by_their_copies(tmp_path: Path) -> None:
    studies, truth = read_back(tmp_path, shapes.FILES[5], "main")
    assert all(s["pmid"] for s in studies)
    pmids: dict[str, set[str]] = {}
    for study, work in zip(studies, truth.works, strict=True):
        pmids.setdefault(work, set()).add(study["pmid"])
    assert all(len(p) == 1 for p in pmids.values())
    assert len({next(iter(p)) for p in pmids.values()}) == len(pmids)


def test_zipf_head_carries_thirty_percent() -> None:
    head = shapes.ZIPF_CUMULATIVE[len(shapes.ZIPF_HEAD) - 1] / shapes.ZIPF_CUMULATIVE[-1]
    assert 0.299 < head <= 0.30
    assert len(set(shapes.ZIPF_NAMES)) == len(shapes.ZIPF_NAMES)


@pytest.mark.slow
def test_import_benchmark_runs_on_tiny_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_import.py"), "--n", str(N), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "import.md").read_text()
    assert table.strip() in done.stdout
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| ") and not line.startswith("| shape ")
    ]
    assert all(len(row) == 13 for row in rows)
    labels = [spec.label for spec in shapes.FILES]
    assert [(row[0], row[1]) for row in rows[: 2 * len(labels)]] == [
        (label, into) for label in labels for into in ("empty", str(N))
    ]
    assert len(rows) == 2 * len(labels) + 2  # and the 2n row, and a dry run
    scale, dry = rows[-2], rows[-1]
    assert scale[0].split(" ")[0] in labels and scale[1:3] == ["empty", f"{2 * N}"]
    assert dry[0] == scale[0] and dry[1:3] == ["empty, --dry-run", f"{N}"]
    for row in rows:
        assert row[6].split(" ")[-1] in ("ok", "**MISS**"), row
        assert float(row[3]) > 0 and float(row[4]) > 0, row
    by_label = {row[0]: row for row in rows[: 2 * len(labels)] if row[1] == "empty"}
    if "n/a" not in by_label["e"][9]:  # `evidence import --report` is there: e has duplicates to find
        assert by_label["e"][9].endswith(("ok", "**MISS**")) and "%" in by_label["e"][10]
        assert by_label["d"][8].endswith("wrong)")
