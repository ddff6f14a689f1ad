"""The `evidence` command line: a thin click layer over the `evidence` library.

Each command parses its options, calls one library function with the session the root group opened,
and renders. Heavy modules (SQLAlchemy, pandas, habanero, citeproc) are imported inside commands, so
`evidence --help` starts fast.
"""

from __future__ import annotations

import atexit
import gc
import json
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from evidence import vocab
from evidence.errors import EvidenceError
from evidence.schema import STUDY_FIELDS

if TYPE_CHECKING:
    from evidence.config import Settings
    from evidence.store.db import Database

from evidence import __version__

F = TypeVar("F", bound=Callable[..., Any])

# Start-up speed: SQLAlchemy's import makes hundreds of thousands of objects; collecting them while they
# load, and once more at exit, costs ~100 ms of a ~350 ms `evidence find` (measured in tests/bench).
# Collection is off until the database is open, then back on for the real work; at exit the survivors
# are frozen so the final collection skips them.
gc.disable()
atexit.register(gc.freeze)
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

MECHANISM_NAMES = [m.name for m in vocab.MECHANISMS]
CLAIM_NAMES = [c.name for c in vocab.CLAIMS]


PATH_MAX = 4096  # Linux's longest path: a longer value cannot name a file, whatever it holds


def _names_a_place(value: str) -> bool:
    """A file path or a database URL: quoted whole, since the user must see which file or library is
    meant (a temporary directory alone can pass 80 characters). A value too long to be a path is not."""
    return len(value) <= PATH_MAX and "/" in value


class EvidenceGroup(click.Group):
    """Turns every failure a user can cause into one `Error: ...` line and exit 1: our own errors, and
    the file-system and database errors below them. A traceback only with --debug."""

    _argv: tuple[str, ...] = ()

    def main(self, args: Any = None, *rest: Any, **options: Any) -> Any:
        self._argv = tuple(str(a) for a in (sys.argv[1:] if args is None else args))
        return super().main(args, *rest, **options)

    def make_context(self, *args: Any, **options: Any) -> click.Context:
        try:
            return super().make_context(*args, **options)
        except click.ClickException as exc:
            self._clip(exc)
            raise

    def _clip(self, exc: click.ClickException) -> None:
        """An error quotes at most the first 80 characters of a value the user gave (click's own messages
        quote a bad value whole); a path or URL is quoted whole."""
        from evidence.errors import QUOTE_LIMIT, clipped, quoted

        values = {
            v
            for a in self._argv
            for v in (a, a.partition("=")[2])
            if len(v) > QUOTE_LIMIT and not _names_a_place(v)
        }
        message = exc.message
        for value in sorted(values, key=len, reverse=True):
            message = message.replace(repr(value), quoted(value)).replace(value, clipped(value))
        vars(exc)["message"] = message  # click declares it Final; the exception is ours to reword

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke(ctx)
        except click.ClickException as exc:
            self._clip(exc)
            raise

    def _invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.find_root().params.get("debug"))
        try:
            return super().invoke(ctx)
        except EvidenceError as exc:
            if debug:
                raise
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            if debug:
                raise
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from exc
        except Exception as exc:
            if debug or not type(exc).__module__.startswith("sqlalchemy"):
                raise
            from evidence.store.db import describe_failure

            state = ctx.find_root().obj
            url = state.settings.db_url if isinstance(state, AppState) else ""
            raise click.ClickException(describe_failure(url, exc)) from exc


class AppState:
    """What the root group hands to commands: settings, and the database opened on first use."""

    def __init__(self, ctx: click.Context, db: str | None, verbose: int) -> None:
        self._ctx = ctx
        self._db_option = db
        self.verbose = verbose
        self._settings: Settings | None = None
        self._database: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from evidence.config import load_settings

            self._settings = load_settings().with_db(self._db_option)
        return self._settings

    def database(self, *, seed: bool = True) -> Database:
        if self._database is None:
            from evidence.library import open_library

            try:
                self._database = open_library(self.settings, seed=seed)
            finally:
                gc.freeze()
                gc.enable()
            self._ctx.call_on_close(self._database.close)
        return self._database


pass_state = click.make_pass_decorator(AppState)


class Ref(click.ParamType):  # type: ignore[type-arg]
    """A study reference: id, citekey, DOI or PMID. A DOI-looking value is validated here."""

    name = "REF"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from evidence import ids

        text = str(value).strip()
        if not text:
            self.fail("a study reference is empty", param, ctx)
        if text.startswith("10.") or text.lower().startswith(("doi:", "https://doi.org/")):
            try:
                return ids.normalize_doi(text)
            except EvidenceError as exc:
                self.fail(str(exc), param, ctx)
        return text


class Doi(click.ParamType):  # type: ignore[type-arg]
    name = "DOI"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from evidence import ids

        try:
            return ids.normalize_doi(str(value))
        except EvidenceError as exc:
            self.fail(str(exc), param, ctx)


class Pmid(click.ParamType):  # type: ignore[type-arg]
    name = "PMID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from evidence import ids

        try:
            return ids.normalize_pmid(str(value))
        except EvidenceError as exc:
            self.fail(str(exc), param, ctx)


REF = Ref()
STUDY_TABLE = ("id", "citekey", "year", "design", "level", "population", "pedro", "claims", "title")


def output_options(func: F) -> F:
    """--format/--columns/--wide/-o shared by every listing command."""
    func = click.option(
        "--wide",
        is_flag=True,
        expose_value=False,
        callback=lambda ctx, _param, value: ctx.meta.__setitem__("evidence.wide", value),
        help="Table: the full layout, every cell whole, whatever the terminal's width.",
    )(func)
    func = click.option(
        "-o",
        "--output",
        "output",
        metavar="FILE",
        default=None,
        help="Write to FILE instead of stdout ('-' = stdout).",
    )(func)
    func = click.option(
        "--columns",
        metavar="A,B,...",
        default=None,
        help="Comma-separated columns to show (JSON field names).",
    )(func)
    func = click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "json", "ndjson"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(func)
    return func


def emit_rows(
    rows: Iterable[dict[str, Any]],
    fmt: str,
    output: str | None,
    columns: str | None,
    *,
    table_columns: Iterable[str] | None = None,
    title: str | None = None,
    fields: Iterable[str] | None = None,
    empty: str = "no studies match",
) -> int:
    """Write rows as the listing options say; an empty table is a message on stderr (`empty`)."""
    from evidence.render import open_output, write_rows

    names = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    with open_output(output) as out:
        count = write_rows(
            rows,
            fmt,
            out,
            columns=names,
            table_columns=list(table_columns) if table_columns else None,
            title=title,
            fields=list(fields) if fields else None,
            wide=bool(click.get_current_context().meta.get("evidence.wide")),
        )
    if not count and fmt == "table":
        click.echo(empty, err=True)
    if output not in (None, "-"):
        click.echo(f"wrote {count} rows to {output}", err=True)
    return count


def confirm_or_stop(question: str, refused: str, action: str) -> None:
    """Ask on stderr; a "no", or nobody to answer (no stdin, as in CI), stops the command with exit 1."""
    try:
        confirmed = click.confirm(question, default=False, err=True)
    except click.Abort:
        raise click.ClickException(f"{refused}: nobody answered; rerun with --yes to {action}") from None
    if not confirmed:
        raise click.ClickException(refused)


def choice(names: Iterable[str]) -> click.Choice[str]:
    return click.Choice(list(names), case_sensitive=False)


# --- root group ---------------------------------------------------------------------------------------


@click.group(cls=EvidenceGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="evidence")
@click.option(
    "--db",
    metavar="PATH|URL",
    envvar="EVIDENCE_DB",
    default=None,
    help="Library database (a SQLite path or SQLAlchemy URL). Default: SQLite in the user-data "
    "folder (or $EVIDENCE_HOME).",
)
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for SQL).")
@click.option("--debug", is_flag=True, hidden=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, db: str | None, verbose: int, debug: bool) -> None:
    """evidence: what the studies say about instrument-assisted soft tissue mobilization (IASTM).

    A reference library of clinical studies, each tagged with the mechanism and claim it bears on, which
    way it points (supports / contradicts / mixed / no-effect), its design and OCEBM level. It ships with a
    curated IASTM library and works offline.

    \b
    Examples:
      evidence claims
      evidence find --mechanism neural-stimulation --stance supports --max-level 2
      evidence find --text "range of motion" --sort relevance
      evidence show loghmani2009instrument
    """
    import logging

    if verbose:
        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO, stream=sys.stderr)
        if verbose > 1:
            logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    else:
        # psycopg warns on stderr as it tidies up a connection that was lost; the user gets one line.
        logging.getLogger("psycopg").setLevel(logging.ERROR)
    ctx.obj = AppState(ctx, db, verbose)


# --- find / show --------------------------------------------------------------------------------------


def find_filter_options(func: F) -> F:
    """The filters of `find`, shared with `export` and `cite`."""
    options = [
        click.option(
            "--mechanism",
            "mechanisms",
            multiple=True,
            type=choice(MECHANISM_NAMES),
            help="Bears on this mechanism (repeat for any of several).",
        ),
        click.option(
            "--claim",
            "claims",
            multiple=True,
            type=choice(CLAIM_NAMES),
            help="Bears on this claim (repeat for any of several).",
        ),
        click.option(
            "--stance",
            "stances",
            multiple=True,
            type=choice(vocab.STANCES),
            help="Points this way on the chosen claim/mechanism (repeatable).",
        ),
        click.option(
            "--design",
            "designs",
            multiple=True,
            type=choice(vocab.DESIGNS),
            help="Study design (repeatable).",
        ),
        click.option(
            "--max-level",
            type=click.IntRange(1, 5),
            default=None,
            help="OCEBM 2011 level this strong or stronger (1 = systematic review).",
        ),
        click.option("--population", type=choice(vocab.POPULATIONS), default=None, help="human or animal."),
        click.option("--condition", default=None, help="Condition or body region contains this text."),
        click.option(
            "--year-from", type=click.IntRange(1800, 2200), default=None, help="Published in or after."
        ),
        click.option(
            "--year-to", type=click.IntRange(1800, 2200), default=None, help="Published in or before."
        ),
        click.option("--tag", "tags", multiple=True, help="Has this tag (repeat: all of them)."),
        click.option("--min-pedro", type=click.IntRange(0, 10), default=None, help="PEDro score at least."),
        click.option(
            "--text", default=None, help='Full-text search in title, abstract and notes ("phrase").'
        ),
        click.option("--exclude-retracted", is_flag=True, help="Hide retracted studies."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_filters(params: dict[str, Any]) -> Any:
    """find's filters from the options `find_filter_options` declared (named as FindFilters' fields)."""
    from evidence.query import FindFilters

    return FindFilters.from_options(params)


@cli.command()
@find_filter_options
@click.option(
    "--sort",
    type=click.Choice(["level", "year", "pedro", "title", "relevance"]),
    default=None,
    help="Order: level (strongest first, default), year (newest), pedro, title, relevance (--text).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many studies.")
@output_options
@pass_state
def find(
    state: AppState,
    /,
    sort: str | None,
    limit: int | None,
    fmt: str,
    columns: str | None,
    output: str | None,
    **params: Any,
) -> None:
    """Find studies by mechanism, claim, stance, design, level and more.

    Filters combine with AND; a repeated option means any of its values. --stance applies to the
    --claim/--mechanism you name (a study that supports one claim and contradicts another is found
    only for the claim where the stance holds). Retracted studies are marked [RETRACTED].

    \b
    Examples:
      evidence find --mechanism inflammatory-healing --population human
      evidence find --claim mechanoreceptor-rom --stance contradicts --stance no-effect
      evidence find --design rct --min-pedro 6 --sort pedro
      evidence find --text "range of motion" --limit 10 --format json
      evidence find --tag practice-article --format csv -o practice.csv
    """
    from evidence.query import find_studies

    with state.database().transaction() as session:
        rows = find_studies(session, make_filters(params), sort=sort, limit=limit)
    from evidence.schema import ROW_FIELDS

    emit_rows(rows, fmt, output, columns, table_columns=STUDY_TABLE, fields=ROW_FIELDS)


@cli.command()
@click.argument("ref", type=REF)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_state
def show(state: AppState, ref: str, fmt: str) -> None:
    """Show every field of one study: authors, claims with stance and finding, verification status.

    REF is an id, citekey, DOI or PMID (prefix pmid: or id: to be explicit).

    \b
    Examples:
      evidence show loghmani2009instrument
      evidence show 10.1179/2042618611y.0000000006
      evidence show pmid:22851875 --format json
    """
    from evidence.query import show_study

    with state.database().transaction() as session:
        study = show_study(session, ref)
    if fmt == "json":
        click.echo(json.dumps(study, ensure_ascii=False, indent=2))
        return
    from evidence.textview import study_text

    click.echo(study_text(study))


# --- writing ------------------------------------------------------------------------------------------


def study_field_options(func: F) -> F:
    """Fields a user may set by hand (shared by `add` and `edit`)."""
    options = [
        click.option("--title", default=None, help="Title."),
        click.option(
            "--author",
            "authors",
            multiple=True,
            metavar='"FAMILY, GIVEN"',
            help="Author in order (repeat); an organisation without a comma.",
        ),
        click.option("--journal", default=None),
        click.option("--year", default=None, metavar="YYYY"),
        click.option("--volume", default=None),
        click.option("--issue", default=None),
        click.option("--pages", default=None, metavar="FIRST-LAST"),
        click.option("--doi", "doi", type=Doi(), default=None),
        click.option("--pmid", type=Pmid(), default=None),
        click.option("--pmcid", default=None),
        click.option("--citekey", default=None, help="Citation key (default: family + year + title word)."),
        click.option("--design", type=choice(vocab.DESIGNS), default=None, help="Study design."),
        click.option(
            "--level", default=None, metavar="1-5", help="Override the OCEBM level implied by design."
        ),
        click.option("--population", type=choice(vocab.POPULATIONS), default=None),
        click.option("--condition", default=None),
        click.option("--body-region", default=None),
        click.option("--sample-size", default=None, metavar="N"),
        click.option("--pedro", default=None, metavar="0-10", help="PEDro score."),
        click.option("--abstract", default=None),
        click.option("--url", default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# The study's fields that `add` and `edit` take as options (the rest come from Crossref or an import).
FIELD_PARAMS = tuple(
    f
    for f in STUDY_FIELDS
    if f
    not in (
        "issn",
        "publisher",
        "article_number",
        "publication_type",
        "language",
        "notes",
        "population_detail",
    )
)


def given_fields(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in FIELD_PARAMS if params.get(k) is not None}


@cli.command()
@study_field_options
@click.option("--tag", "tags", multiple=True, help="Tag (repeat).")
@click.option(
    "--claim", "claims", multiple=True, type=choice(CLAIM_NAMES), help="Claim it bears on (repeat)."
)
@click.option("--stance", type=choice(vocab.STANCES), default=None, help="Stance on every --claim given.")
@click.option("--finding", default=None, help="One-line finding for the --claim links.")
@click.option(
    "--citation",
    default=None,
    metavar="TEXT",
    help="Find the study in Crossref from a free-text citation (stored only if the match is confident).",
)
@click.option(
    "--pick",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="With --citation: store candidate N.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_state
def add(
    state: AppState,
    /,
    authors: tuple[str, ...],
    tags: tuple[str, ...],
    claims: tuple[str, ...],
    stance: str | None,
    finding: str | None,
    citation: str | None,
    pick: int | None,
    fmt: str,
    **params: Any,
) -> None:
    """Add a study by hand, or from Crossref by DOI or citation (a duplicate DOI, PMID or citekey is refused).

    With --doi and no --title the record is fetched from Crossref (authors with ORCID, journal, abstract,
    ISSN, citations, retraction status...). With --citation, Crossref's candidates are checked on title,
    first author and year; a confident match is stored, otherwise the ranked candidates are shown and
    nothing is stored until you rerun with --pick N. Other options (claims, design, tags...) apply too.

    \b
    Examples:
      evidence add --title "IASTM for lateral elbow pain" --author "Doe, Jane" --year 2024 \\
          --journal "J Hand Ther" --design rct --population human --pedro 7 \\
          --claim pain-modulation --stance supports --finding "Pain fell more than with sham at 6 weeks"
      evidence add --doi 10.1016/j.jbmt.2011.02.004 --claim fascial-gliding --stance supports
      evidence add --citation "Markovic G (2015) Acute effects of IASTM vs foam rolling. J Bodyw Mov Ther"
      evidence add --citation "Markovic 2015 IASTM foam rolling" --pick 2
    """
    fields = given_fields(params)
    if pick is not None and citation is None:
        raise click.UsageError("--pick goes with --citation")
    if citation is not None and (fields.get("title") or fields.get("doi")):
        raise click.UsageError("--citation cannot be combined with --title or --doi")
    if citation is not None or (fields.get("doi") and not fields.get("title")):
        add_from_crossref(state, fields, authors, tags, claims, stance, finding, citation, pick, fmt)
        return
    from evidence.library import add_manual

    study = state.database().write(
        lambda session: add_manual(
            session, fields, authors=authors, tags=tags, claims=claims, stance=stance, finding=finding
        )
    )
    render_study(study, fmt, verb="added")


def add_from_crossref(
    state: AppState,
    fields: dict[str, Any],
    authors: tuple[str, ...],
    tags: tuple[str, ...],
    claims: tuple[str, ...],
    stance: str | None,
    finding: str | None,
    citation: str | None,
    pick: int | None,
    fmt: str,
) -> None:
    """`add --doi` (no --title) and `add --citation`: fetch, store, show."""
    from evidence import enrich
    from evidence.errors import AmbiguousMatch

    client = enrich.make_client(state.settings)
    options: dict[str, Any] = {
        "fields": fields,
        "authors": authors,
        "tags": tags,
        "claims": claims,
        "stance": stance,
        "finding": finding,
    }
    with state.database().transaction() as session:
        if citation is None:
            study = enrich.add_by_doi(session, client, str(fields["doi"]), **options)
        else:
            added = enrich.add_by_citation(session, client, citation, pick=pick, **options)
            if added.study is None:
                emit_candidates(added.decision, fmt)
                raise AmbiguousMatch(
                    f"ambiguous: {added.decision.why}; nothing stored. "
                    "Rerun with --pick N to store candidate N"
                    if added.decision.candidates
                    else "Crossref found no candidate for this citation; nothing stored"
                )
            study = added.study
            assert added.picked is not None
            click.echo(f"matched {added.picked.work.doi}: {added.decision.why}", err=True)
    render_study(study, fmt, verb="added from Crossref")


CANDIDATE_TABLE = ("rank", "confidence", "doi", "year", "first_author", "title", "reasons")


def emit_candidates(decision: Any, fmt: str) -> None:
    """Ranked Crossref candidates on stdout (a table, or the decision as JSON)."""
    if fmt == "json":
        click.echo(json.dumps(decision.as_dict(), ensure_ascii=False, indent=2))
        return
    emit_rows([c.as_dict() for c in decision.candidates], "table", None, None, table_columns=CANDIDATE_TABLE)


def render_study(study: dict[str, Any], fmt: str, *, verb: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(study, ensure_ascii=False, indent=2))
        return
    from evidence.textview import study_text

    click.echo(study_text(study))
    click.echo(f"{verb} study {study['id']} ({study['citekey']})", err=True)


@cli.command()
@click.argument("ref", type=REF)
@study_field_options
@click.option("--clear", "clear", multiple=True, type=choice(FIELD_PARAMS), help="Empty this field (repeat).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_state
def edit(
    state: AppState, /, ref: str, authors: tuple[str, ...], clear: tuple[str, ...], fmt: str, **params: Any
) -> None:
    """Change fields of a study. Edited fields are marked as yours and never overwritten by enrichment.

    \b
    Examples:
      evidence edit crothers2016spinal --pedro 8
      evidence edit 12 --design rct --clear level
      evidence edit 10.1016/j.jbmt.2011.02.004 --author "Bove, Geoffrey M" --author "Chapelle, Susan L"
    """
    from evidence.library import edit_ref

    changes = given_fields(params)
    changes.update(dict.fromkeys(clear))
    study, changed = state.database().write(
        lambda session: edit_ref(session, ref, changes, authors=list(authors) or None)
    )
    render_study(study, fmt, verb=f"changed {', '.join(changed) or 'nothing'} in")


@cli.command()
@click.argument("ref", type=REF)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def remove(state: AppState, ref: str, yes: bool) -> None:
    """Remove a study (asks first unless --yes).

    \b
    Examples:
      evidence remove 12
      evidence remove bove2012visceral --yes
    """
    from evidence.library import describe_ref, remove_ref

    with state.database().transaction() as session:
        description = describe_ref(session, ref)
        if not yes:
            confirm_or_stop(f"Remove {description}?", "not removed", f"remove {ref}")
        remove_ref(session, ref)
    click.echo(f"removed {description}", err=True)


@cli.command()
@click.argument("ref", type=REF)
@click.option("-t", "--tag", "tags", multiple=True, required=True, help="Tag to add (repeat).")
@pass_state
def tag(state: AppState, ref: str, tags: tuple[str, ...]) -> None:
    """Add free tags to a study.

    \b
    Examples:
      evidence tag crothers2016spinal -t handout -t thoracic
    """
    from evidence.library import tag_ref

    added = state.database().write(lambda session: tag_ref(session, ref, tags))
    click.echo(f"tagged: {', '.join(added) or 'nothing new'}", err=True)


@cli.command()
@click.argument("ref", type=REF)
@click.option("-t", "--tag", "tags", multiple=True, required=True, help="Tag to remove (repeat).")
@pass_state
def untag(state: AppState, ref: str, tags: tuple[str, ...]) -> None:
    """Remove tags from a study.

    \b
    Examples:
      evidence untag crothers2016spinal -t handout
    """
    from evidence.library import untag_ref

    removed = state.database().write(lambda session: untag_ref(session, ref, tags))
    click.echo(f"untagged: {', '.join(removed) or 'nothing'}", err=True)


@cli.command()
@click.argument("ref", type=REF)
@click.option("--claim", required=True, type=choice(CLAIM_NAMES), help="The claim.")
@click.option("--stance", required=True, type=choice(vocab.STANCES), help="Which way the study points.")
@click.option("--finding", default=None, help="One line, in your words: what it found.")
@pass_state
def link(state: AppState, ref: str, claim: str, stance: str, finding: str | None) -> None:
    """Link a study to a claim with a stance (re-linking changes the stance).

    \b
    Examples:
      evidence link ikeda2019effects --claim tissue-density --stance contradicts \\
          --finding "Muscle stiffness unchanged on elastography although ROM rose"
    """
    from evidence.library import link_ref

    citekey = state.database().write(lambda session: link_ref(session, ref, claim, stance, finding))
    click.echo(f"linked {citekey} to {claim}: {stance}", err=True)


@cli.command()
@click.argument("ref", type=REF)
@click.option("--claim", required=True, type=choice(CLAIM_NAMES))
@pass_state
def unlink(state: AppState, ref: str, claim: str) -> None:
    """Remove a study's link to a claim.

    \b
    Examples:
      evidence unlink bove2012visceral --claim tissue-density
    """
    from evidence.library import unlink_ref

    citekey, removed = state.database().write(lambda session: unlink_ref(session, ref, claim))
    if not removed:
        raise click.ClickException(f"{citekey} is not linked to {claim}")
    click.echo(f"unlinked {citekey} from {claim}", err=True)


@cli.command()
@click.argument("ref", type=REF)
@click.option("-m", "--message", required=True, help="The note (appended as a new paragraph).")
@click.option("--replace", is_flag=True, help="Replace the notes instead of appending.")
@pass_state
def note(state: AppState, ref: str, message: str, replace: bool) -> None:
    """Add a note to a study (notes are searched by find --text).

    \b
    Examples:
      evidence note crothers2016spinal -m "Good example of a sham-controlled trial for patients"
    """
    from evidence.library import note_ref

    citekey = state.database().write(lambda session: note_ref(session, ref, message, replace=replace))
    click.echo(f"noted {citekey}", err=True)


# --- the picture: mechanisms, claims, summary -----------------------------------------------------------


@cli.command()
@output_options
@pass_state
def mechanisms(state: AppState, fmt: str, columns: str | None, output: str | None) -> None:
    """The three claimed mechanisms and how many studies point each way.

    A study counts once per mechanism; with claim links pointing different ways it counts as mixed.
    human + animal + unknown (no population recorded) = studies.

    \b
    Examples:
      evidence mechanisms
      evidence mechanisms --format json
    """
    from evidence.query import mechanism_evidence

    with state.database().transaction() as session:
        rows = mechanism_evidence(session)
    emit_rows(
        rows,
        fmt,
        output,
        columns,
        table_columns=(
            "mechanism",
            "studies",
            "supports",
            "contradicts",
            "mixed",
            "no-effect",
            "human",
            "animal",
            "unknown",
            "description",
        ),
    )


@cli.command()
@click.option("--mechanism", type=choice(MECHANISM_NAMES), default=None, help="Only this mechanism's claims.")
@output_options
@pass_state
def claims(state: AppState, mechanism: str | None, fmt: str, columns: str | None, output: str | None) -> None:
    """Per claim: studies that support / contradict / are mixed / show no effect, human vs animal, by level.

    The table reads "supports 5 (h3 a2)": five supporting studies, three in humans, two in animals;
    "6 (h3 a2 u1)": one more with no population recorded (u = unknown), so the parts add up.
    JSON and CSV carry the full split (human, animal, unknown), including per OCEBM level.

    \b
    Examples:
      evidence claims
      evidence claims --mechanism inflammatory-healing
      evidence claims --format json -o claims.json
    """
    from evidence.query import claim_evidence

    with state.database().transaction() as session:
        rows = claim_evidence(session, mechanism)
    if fmt == "table":
        rows = [claim_table_row(r) for r in rows]
    elif fmt == "csv":
        rows = [claim_csv_row(r) for r in rows]
    emit_rows(rows, fmt, output, columns)


def claim_table_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {"claim": row["claim"], "mechanism": row["mechanism"], "studies": row["studies"]}
    for stance in vocab.STANCES:
        unknown = row["unknown"][stance]
        parts = f"h{row['human'][stance]} a{row['animal'][stance]}" + (f" u{unknown}" if unknown else "")
        out[stance] = f"{row[stance]} ({parts})"
    levels = [f"L{lv}:{sum(c.values())}" for lv, c in row["by_level"].items() if sum(c.values())]
    out["levels"] = " ".join(levels)
    return out


def claim_csv_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {"claim": row["claim"], "mechanism": row["mechanism"], "studies": row["studies"]}
    for stance in vocab.STANCES:
        out[stance] = row[stance]
        for group in ("human", "animal", "unknown"):
            out[f"{stance}_{group}"] = row[group][stance]
    for level, counts in row["by_level"].items():
        for stance in vocab.STANCES:
            out[f"level{level}_{stance}"] = counts[stance]
    return out


@cli.command()
@click.option(
    "--by",
    type=click.Choice(["design", "level", "population"]),
    default="design",
    show_default=True,
    help="Second axis of the pivot.",
)
@output_options
@pass_state
def summary(state: AppState, by: str, fmt: str, columns: str | None, output: str | None) -> None:
    """A pivot of the library: mechanism by design (or level, population), stance counts in each cell.

    A study counts once per mechanism (as mixed when its links point different ways). By population, a
    study with none recorded is counted under "unknown", so the rows of a mechanism add up to its studies.

    \b
    Examples:
      evidence summary
      evidence summary --by level --format csv
    """
    from evidence.query import summary_rows

    with state.database().transaction() as session:
        rows = summary_rows(session, by)
    emit_rows(rows, fmt, output, columns)


# --- Crossref -----------------------------------------------------------------------------------------


class Progress:
    """A click progress bar on stderr, sized on the first report; hidden with --quiet, without a TTY, or
    for less work than `minimum` (a small file imports before a bar would be seen)."""

    def __init__(self, label: str, quiet: bool, *, minimum: int = 0) -> None:
        self.label = label
        self.show = not quiet and sys.stderr.isatty()
        self.minimum = minimum
        self.bar: Any = None
        self.done = 0

    def advance(self, done: int, total: int) -> None:
        """`done` of `total` (items, bytes) are done."""
        if not self.show or total < self.minimum:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(max(0, done - self.done))
        self.done = max(self.done, done)

    def item_done(self, _item: Any, _done: int, total: int) -> None:
        """One more item of `total` (the enrich, check and resolve callbacks)."""
        self.advance(self.done + 1, total)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


@cli.command()
@click.argument("citation", required=False)
@click.option("--missing", is_flag=True, help="Resolve every study in the library that has no DOI.")
@click.option("--apply", is_flag=True, help="With --missing: store the DOIs of confident matches.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@output_options
@pass_state
def resolve(
    state: AppState,
    /,
    citation: str | None,
    missing: bool,
    apply: bool,
    quiet: bool,
    fmt: str,
    columns: str | None,
    output: str | None,
) -> None:
    """Find the DOI of a free-text citation in Crossref, checked on title, first author and year.

    A match is confident only when the title is at least 90% similar, the first author's family name or the
    year agrees with the text (neither contradicts it), and the runner-up is clearly behind; Crossref's own
    score never decides. Exit 1 when no candidate is confident (the ranked candidates are still shown).
    With --missing, every study without a DOI is looked up from its own fields; --apply stores the DOI of
    each confident match (nothing else: run `evidence enrich` next).

    \b
    Examples:
      evidence resolve "Markovic G. Acute effects of IASTM vs foam rolling ... J Bodyw Mov Ther 2015;19:690"
      evidence resolve --missing
      evidence resolve --missing --apply --format json
    """
    from evidence import enrich
    from evidence.errors import AmbiguousMatch

    if missing == bool(citation):
        raise click.UsageError("give a citation, or --missing (not both)")
    if apply and not missing:
        raise click.UsageError("--apply goes with --missing")
    client = enrich.make_client(state.settings)
    if citation:
        decision = enrich.resolve_citation(client, citation)
        rows = [c.as_dict() for c in decision.candidates]
        emit_rows(rows, fmt, output, columns, table_columns=CANDIDATE_TABLE)
        if not decision.confident:
            raise AmbiguousMatch(f"no confident match: {decision.why}")
        assert decision.match is not None
        click.echo(f"confident match: candidate 1, {decision.match.work.doi}: {decision.why}", err=True)
        return
    with Progress("Resolving", quiet) as progress, state.database().transaction() as session:
        found = enrich.resolve_missing(session, client, apply=apply, on_progress=progress.item_done)
    emit_rows(
        [item.row() for item in found],
        fmt,
        output,
        columns,
        table_columns=("id", "citekey", "found", "best_candidate", "confidence", "applied", "why", "note"),
    )
    confident = sum(1 for item in found if item.decision.confident)
    applied = sum(1 for item in found if item.applied)
    click.echo(
        f"{len(found)} studies without a DOI: {confident} confident matches"
        + (f", {applied} DOIs stored" if apply else " (--apply stores them)")
        + f", {len(found) - confident} ambiguous or not found",
        err=True,
    )


ENRICH_TABLE = ("id", "citekey", "doi", "outcome", "filled", "conflicts", "status", "detail")


@cli.command(name="enrich")
@click.argument("refs", nargs=-1, type=REF)
@click.option("--all", "all_studies", is_flag=True, help="Every study in the library.")
@click.option("--refresh", is_flag=True, help="Ask Crossref again even for DOIs already in the cache.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@output_options
@pass_state
def enrich_command(
    state: AppState,
    /,
    refs: tuple[str, ...],
    all_studies: bool,
    refresh: bool,
    quiet: bool,
    fmt: str,
    columns: str | None,
    output: str | None,
) -> None:
    """Fill in what is missing from Crossref (abstract, ISSN, ORCIDs, citations, retraction status...).

    Only empty fields are filled; a field you or the seed curated that differs from Crossref is reported
    as a conflict and kept. Status, updates and citation counts always follow Crossref. Up to 50 DOIs go in
    one request and each chunk of 50 studies is committed, so an interrupted run keeps what it finished;
    DOIs already fetched come from the cache (no request) unless --refresh. Prints a per-study report; exit 1
    if any study failed or its DOI is not in Crossref.

    \b
    Examples:
      evidence enrich --all
      evidence enrich crothers2016spinal 10.1016/j.jbmt.2011.02.004
      evidence enrich --all --refresh --format json -o enrich.json
    """
    from evidence import enrich

    if bool(refs) == all_studies:
        raise click.UsageError("give one or more REFs, or --all (not both)")
    client = enrich.make_client(state.settings)
    database = state.database()
    with Progress("Enriching", quiet) as progress:
        report = enrich.enrich(
            database, client, list(refs) or None, refresh=refresh, on_progress=progress.item_done
        )
    emit_rows([item.row() for item in report.items], fmt, output, columns, table_columns=ENRICH_TABLE)
    click.echo(report.summary(), err=True)
    if report.failed:
        raise click.ClickException("some studies could not be enriched (see the report above)")


CHECK_TABLE = ("id", "citekey", "doi", "status", "updates")


@cli.command()
@click.option("--cached", is_flag=True, help="Re-read the cached records only: no request (works offline).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@output_options
@pass_state
def check(
    state: AppState, /, cached: bool, quiet: bool, fmt: str, columns: str | None, output: str | None
) -> None:
    """Check every study with a DOI for retractions, corrections and expressions of concern.

    Asks Crossref for each work's `updated-by` notices (publisher and Retraction Watch), 50 DOIs per
    request, and updates each study's status; `find` and `show` then mark retracted studies and
    `find --exclude-retracted` hides them. Lists the studies with a notice; exit 0 when the check ran (even
    if it found retractions), 1 if Crossref could not be reached or no study could be checked. --cached
    sends no request: it re-reads what earlier runs fetched.

    \b
    Examples:
      evidence check
      evidence check --format json
    """
    from evidence import enrich

    client = enrich.make_client(state.settings)
    with Progress("Checking", quiet) as progress:
        result = enrich.check_updates(
            state.database(), client, refresh=not cached, on_progress=progress.item_done
        )
    rows = [item.row() for item in result.flagged]
    if rows or fmt != "table":
        emit_rows(rows, fmt, output, columns, table_columns=CHECK_TABLE)
    click.echo(result.summary(), err=True)
    retracted = result.count("retracted")
    if retracted:
        noun = "study is" if retracted == 1 else "studies are"
        click.echo(
            f"WARNING: {retracted} retracted {noun} in the library "
            "(marked [RETRACTED] by find; find --exclude-retracted hides them)",
            err=True,
        )
    if result.failed:
        first = result.failed[0].detail
        raise click.ClickException(f"{len(result.failed)} studies were not checked: {first}")
    if result.nothing_checked:
        raise click.ClickException("no study could be checked: Crossref has none of their DOIs")


# --- citation lists: export, cite, import ---------------------------------------------------------------

EXPORT_FORMAT_NAMES = ("bibtex", "biblatex", "ris", "csljson", "csv", "xlsx")
IMPORT_FORMAT_NAMES = ("auto", "bibtex", "ris", "csljson", "nbib", "csv")
CITE_SORTS = ("level", "year", "pedro", "title", "relevance")


def selection_options(func: F) -> F:
    """REFs, find's filters and --sort: which studies `export` and `cite` take."""
    func = click.option(
        "--sort",
        type=click.Choice(CITE_SORTS),
        default=None,
        help="Order: level (default), year, pedro, title, relevance (--text); REFs keep their order.",
    )(func)
    func = find_filter_options(func)
    return click.argument("refs", nargs=-1, type=REF)(func)


style_option = click.option(
    "--style",
    default="american-medical-association",
    show_default=True,
    metavar="NAME",
    help="CSL style: american-medical-association, vancouver, apa, or any name from "
    "`evidence cite --list-styles`.",
)


def selected_ids(session: Any, refs: tuple[str, ...], sort: str | None, filters: Any) -> list[int]:
    from evidence.exchange import select_ids

    return select_ids(session, filters, refs, sort=sort)


@cli.command()
@selection_options
@click.option(
    "--to",
    "fmt",
    type=click.Choice(EXPORT_FORMAT_NAMES),
    default="bibtex",
    show_default=True,
    help="Format: BibTeX, BibLaTeX, RIS, CSL-JSON, CSV or Excel (xlsx needs -o FILE).",
)
@click.option("-o", "--output", metavar="FILE", default=None, help="Write to FILE (default: stdout).")
@pass_state
def export(
    state: AppState, /, refs: tuple[str, ...], sort: str | None, fmt: str, output: str | None, **params: Any
) -> None:
    """Export studies as a citation file for Zotero, EndNote, LaTeX, RevMan or a spreadsheet.

    Takes REFs (id, citekey, DOI or PMID), or the same filters as `find` (none: the whole library).
    Mechanisms, claims with stance and finding, evidence level, design, PEDro score, tags and notes travel
    in keywords and notes; a retracted or corrected study says so in every format. The file is written
    whole or not at all.

    \b
    Examples:
      evidence export --claim pain-modulation --to ris -o pain.ris
      evidence export --mechanism neural-stimulation --max-level 2 --to bibtex > refs.bib
      evidence export crothers2016spinal 10.1016/j.jbmt.2011.02.004 --to csljson
      evidence export --to xlsx -o library.xlsx
    """
    from evidence.exchange import export_selection
    from evidence.render import open_output

    with state.database().transaction() as session:
        ids = selected_ids(session, refs, sort, make_filters(params))
        # Binary for every format: the text formats are written in UTF-8, whatever stdout's encoding.
        with open_output(output, binary=True) as out:
            count = export_selection(session, ids, fmt, out)
    noun = "study" if count == 1 else "studies"
    click.echo(f"exported {count} {noun} to {output if output not in (None, '-') else 'stdout'}", err=True)


@cli.command()
@selection_options
@style_option
@click.option("--list-styles", is_flag=True, help="List the installed citation styles and exit.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "html", "markdown"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.option("--by-claim", is_flag=True, help="Group under each claim: supporting, contradicting, ...")
@click.option("-o", "--output", metavar="FILE", default=None, help="Write to FILE (default: stdout).")
@pass_state
def cite(
    state: AppState,
    /,
    refs: tuple[str, ...],
    sort: str | None,
    style: str,
    list_styles: bool,
    fmt: str,
    by_claim: bool,
    output: str | None,
    **params: Any,
) -> None:
    """Print a formatted bibliography (AMA, Vancouver, APA...) of the chosen studies.

    Same selection as `export`. Numbered styles number the studies in the order chosen (--sort, or the
    REFs' order). Retracted studies are marked [RETRACTED] before the title. With --by-claim, studies are
    listed under each claim, split by stance, each numbered once.

    \b
    Examples:
      evidence cite --claim pain-modulation
      evidence cite --claim mechanoreceptor-rom --style vancouver --format markdown -o refs.md
      evidence cite crothers2016spinal bayliss2011treatment --style apa --format html
      evidence cite --mechanism neural-stimulation --by-claim
      evidence cite --list-styles
    """
    from evidence.exchange import cite_selection
    from evidence.exchange import list_styles as installed_styles
    from evidence.render import open_output

    if list_styles:
        click.echo("\n".join(installed_styles()))
        return
    filters = make_filters(params)
    with state.database().transaction() as session:
        ids = selected_ids(session, refs, sort, filters)
        text = cite_selection(session, ids, style=style, fmt=fmt, by_claim=by_claim, filters=filters)
    with open_output(output) as out:
        out.write(text)
    if output not in (None, "-"):
        noun = "study" if len(ids) == 1 else "studies"
        click.echo(f"cited {len(ids)} {noun} in {output}", err=True)


@cli.command()
@find_filter_options
@click.option(
    "--by",
    type=click.Choice(["mechanism", "claim"]),
    default="mechanism",
    show_default=True,
    help="A section per mechanism (its claims inside) or per claim.",
)
@style_option
@click.option("--title", default=None, help="The page's title.")
@click.option("--pdf", is_flag=True, help="Print to PDF through headless Chromium instead of HTML.")
@click.option(
    "--chromium", metavar="PATH", default=None, help="The Chromium to print with (default: the PATH's)."
)
@click.option(
    "--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True, help="Printed page size."
)
@click.option(
    "-o", "--output", metavar="FILE", required=True, help="The file to write (HTML, or PDF with --pdf)."
)
@pass_state
def report(
    state: AppState,
    /,
    by: str,
    style: str,
    title: str | None,
    pdf: bool,
    chromium: str | None,
    paper: str,
    output: str,
    **params: Any,
) -> None:
    """Write the evidence report: one page that says, claim by claim, what the studies show.

    Takes the same filters as `find` (none: the whole library). Per mechanism and claim: a verdict counted
    from the data (stances, human vs animal, the strongest human evidence), the studies with their
    references, stance, finding, design, level, population and sample size, an evidence map and the
    studies by year. Retracted, corrected and concerned studies are flagged and never counted. The HTML
    is self-contained (styles and charts inline, nothing fetched), so it opens offline and can be sent;
    --pdf prints the same page through a Chromium already installed.

    \b
    Examples:
      evidence report -o report.html
      evidence report --mechanism neural-stimulation --population human -o neural.html
      evidence report --by claim --style apa --title "IASTM for heel pain" -o heel.html
      evidence report --pdf --paper letter -o report.pdf
    """
    from evidence.report import write_report

    with state.database().transaction() as session:
        made, size = write_report(
            session,
            make_filters(params),
            output,
            pdf=pdf,
            chromium=chromium,
            paper=paper,
            by=by,
            style=style,
            title=title,
            library=state.database().display,
        )
    n = len(made.studies)
    click.echo(
        f"wrote a report on {n} {'study' if n == 1 else 'studies'} to {output} ({size:,} bytes)", err=True
    )


@cli.command(name="import")
@click.argument("file", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(IMPORT_FORMAT_NAMES),
    default="auto",
    show_default=True,
    help="File format (auto: recognised from the content).",
)
@click.option("--dry-run", is_flag=True, help="Do everything, report, and roll back: nothing is written.")
@click.option(
    "--report",
    "report_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write the whole report as JSON: every record's line, what became of it, possible duplicates.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@pass_state
def import_command(
    state: AppState, /, file: str, fmt: str, dry_run: bool, report_path: str | None, quiet: bool
) -> None:
    """Import a citation file (BibTeX, RIS, CSL-JSON, PubMed NBIB or our CSV); FILE '-' reads stdin.

    Every record is checked first. A record is a study the library (or the file) already has when its
    DOI or PMID says so, or when its title is the same once case, punctuation, accents, British/American
    spelling and a dropped subtitle are set aside, with the same first author (initials that agree) and
    year; it is merged field by field: missing fields are filled, differing ones reported as conflicts and
    never overwritten. Titles that differ in a word or a number are different studies. A record that only
    may be one (a typo in the title, a year apart) is imported as new and listed as a possible duplicate:
    see `evidence duplicates` and `evidence merge`. Claims, mechanisms, levels, tags and notes written by
    `evidence export` come back. One transaction: a malformed record anywhere stops the import with its
    line, and the library is unchanged.

    \b
    Examples:
      evidence import zotero.ris
      evidence import pubmed-search.nbib --dry-run
      evidence import colleague.bib --format bibtex --report colleague-import.json
      cat refs.json | evidence import -
    """
    from evidence.exchange import import_path, import_stream
    from evidence.render import open_output

    keep = report_path is not None
    with state.database().transaction(rollback=dry_run) as session:
        if file == "-":
            report = import_stream(session, sys.stdin, fmt=fmt, keep_outcomes=keep)
        else:
            with Progress("Importing", quiet, minimum=1_000_000) as progress:
                report = import_path(session, file, fmt=fmt, on_progress=progress.advance, keep_outcomes=keep)
        if report_path is not None:  # inside the transaction: a report that cannot be written undoes it
            with open_output(report_path) as out:
                json.dump(report.as_dict(dry_run=dry_run), out, ensure_ascii=False, indent=1)
    for line in report.summary_lines(dry_run=dry_run):
        click.echo(line, err=True)
    if report_path is not None:
        click.echo(f"wrote the import report to {report_path}", err=True)


@cli.command()
@output_options
@pass_state
def duplicates(state: AppState, fmt: str, output: str | None, columns: str | None) -> None:
    """List pairs of library studies that are, or may be, one work.

    "likely": the same DOI or PMID, or the same title (spelling aside), first author and year, as the
    importer would have merged. "possible": close but not certain (a typo in the title, a year apart,
    one without authors), as the importer lists them. Nothing is changed: merge a pair with
    `evidence merge KEEP OTHER`.

    \b
    Examples:
      evidence duplicates
      evidence duplicates --format csv -o duplicates.csv
    """
    from evidence.duplicates import library_duplicates

    with state.database().transaction() as session:
        pairs, _work = library_duplicates(session)
    emit_rows(
        (pair.as_row() for pair in pairs),
        fmt,
        output,
        columns,
        table_columns=("kind", "study", "other", "why", "study_title"),
        title="Possible duplicates",
        empty="no duplicates found",
    )


@cli.command()
@click.argument("keep", metavar="KEEP", type=REF)
@click.argument("other", metavar="OTHER", type=REF)
@click.option("--yes", is_flag=True, help="Do not ask first.")
@pass_state
def merge(state: AppState, keep: str, other: str, yes: bool) -> None:
    """Merge study OTHER into study KEEP, then remove OTHER (asks first unless --yes).

    KEEP's fields stay; what it lacks is filled from OTHER; OTHER's authors (if KEEP has none), tags,
    claim links and notes come over. A claim both link with different stances keeps KEEP's, and every
    such difference is reported. One transaction.

    \b
    Examples:
      evidence merge smith2020effects smith2020effectsa
      evidence merge 12 57 --yes
    """
    from evidence.duplicates import merge_studies
    from evidence.library import describe_ref

    with state.database().transaction() as session:
        if not yes:
            question = f"Merge {describe_ref(session, other)} into {describe_ref(session, keep)}?"
            confirm_or_stop(question, "not merged", f"merge {other} into {keep}")
        result = merge_studies(session, keep, other)
    filled = f"; filled {', '.join(result.filled)}" if result.filled else ""
    click.echo(f"merged {result.removed} into {result.kept}{filled}", err=True)
    for conflict in result.conflicts:
        click.echo(f"  conflict: {conflict} (kept {result.kept}'s)", err=True)


# --- database -----------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The library database: where it is, its schema, its seed data.

    \b
    Examples:
      evidence db path
      evidence db upgrade
      evidence db init --empty
      evidence db seed
      evidence db backup backup.db
      evidence db check
    """


@db.command(name="path")
@pass_state
def db_path(state: AppState) -> None:
    """Print the database URL in use (no database is opened).

    \b
    Examples:
      evidence db path
    """
    click.echo(state.settings.db_display)


@db.command()
@pass_state
def upgrade(state: AppState) -> None:
    """Create or upgrade the schema (it also happens on every open); seeds a new library.

    \b
    Examples:
      evidence db upgrade
    """
    from evidence.library import library_status

    database = state.database()
    if database.migration_backup is not None:
        click.echo(f"backed up the library to {database.migration_backup} before migrating", err=True)
    with database.transaction() as session:
        status = library_status(session)
    click.echo(f"schema at revision {status['revision']}; {status['studies']} studies", err=True)


@db.command(name="backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@pass_state
def db_backup(state: AppState, file: str) -> None:
    """Back the library up to FILE, a new SQLite file (SQLite's online backup; db copy from PostgreSQL).

    Other clients may go on working meanwhile; the backup is one consistent snapshot, whole or absent,
    and opens with --db FILE. db upgrade takes one itself before it migrates a SQLite library.

    \b
    Examples:
      evidence db backup ~/backups/evidence-2026-12-02.db
      evidence --db postgresql://me@clinic-server/evidence db backup clinic.db
    """
    from evidence.library import backup_library

    report = backup_library(state.settings, file)
    click.echo(f"backed up {report.studies} studies to {report.path} ({report.size:,} bytes)", err=True)


@db.command(name="check")
@pass_state
def db_check(state: AppState) -> None:
    """Check the library: integrity, foreign keys, full-text index, vocabulary, orphans; exit 1 on a problem.

    One line per problem on stdout (nothing when the library is sound); it reads, never repairs.

    \b
    Examples:
      evidence db check
      evidence --db clinic.db db check || echo "restore from a backup"
    """
    from evidence.library import check_library

    problems = check_library(state.settings)
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(f"{len(problems)} problems in {state.settings.db_display}")
    click.echo(f"no problems in {state.settings.db_display}", err=True)


@db.command()
@click.option(
    "--empty", is_flag=True, help="Do not load the shipped IASTM library (a clinic's own collection)."
)
@pass_state
def init(state: AppState, empty: bool) -> None:
    """Create the library (seeded with the shipped IASTM studies unless --empty).

    \b
    Examples:
      evidence --db clinic.db db init --empty
    """
    from evidence.library import init_library

    with state.database(seed=False).transaction() as session:
        report = init_library(session, empty=empty)
    click.echo(report, err=True)


@db.command()
@pass_state
def seed(state: AppState) -> None:
    """Load the shipped seed studies the library does not have (never overwrites your edits).

    \b
    Examples:
      evidence db seed
    """
    from evidence.library import reseed

    with state.database(seed=False).transaction() as session:
        report = reseed(session)
    click.echo(f"seed: {len(report.added)} added, {len(report.kept)} already present", err=True)


@db.command(name="copy")
@click.argument("source")
@click.argument("target")
@click.option("--replace", is_flag=True, help="Replace the library the target already holds.")
@pass_state
def db_copy(state: AppState, source: str, target: str, replace: bool) -> None:
    """Copy a whole library to another database: SQLite to PostgreSQL and back (a path or a URL each).

    Studies, authors, claims and links with their stances and findings, tags, notes, provenance,
    verification states and the Crossref cache, ids and citekeys kept, in one transaction on the
    target. A target that already holds a library is refused unless --replace.

    \b
    Examples:
      evidence db copy ~/.local/share/evidence/evidence.db postgresql://me@clinic-server/evidence
      evidence db copy postgresql://me@clinic-server/evidence laptop-copy.db
      evidence db copy laptop.db postgresql://me@clinic-server/evidence --replace
    """
    from evidence.library import copy_between

    report = copy_between(state.settings, source, target, replace=replace)
    click.echo(f"copied {report.summary()} from {report.source} to {report.target}", err=True)


# --- keeping the evidence current: saved searches, triage, PRISMA -------------------------------------

WATCH_TABLE = ("name", "query", "type", "last_run", "next_from", "records", "pending", "included", "excluded")
TRIAGE_TABLE = ("id", "year", "first_author", "journal", "title", "abstract", "status")


@cli.group()
def watch() -> None:
    """Saved Crossref searches that find new studies: add, list, run, remove.

    A run asks Crossref for the works matching the query and indexed since the last run. New works become
    candidates in the triage queue (`evidence triage`), never studies until you include them; works
    already in the library or already candidates are counted, not stored again.

    \b
    Examples:
      evidence watch add iastm --query "instrument assisted soft tissue mobilization" --since 2024-01-01
      evidence watch run
      evidence watch list
    """


@watch.command(name="add")
@click.argument("name")
@click.option("--query", required=True, help="The words Crossref looks for (at most 500 characters).")
@click.option(
    "--since", metavar="YYYY-MM-DD", default=None, help="The first run asks for works indexed since."
)
@click.option(
    "--type", "work_type", default="journal-article", show_default=True, help="Crossref work type, or 'any'."
)
@pass_state
def watch_add(state: AppState, name: str, query: str, since: str | None, work_type: str) -> None:
    """Save a Crossref search under NAME.

    \b
    Examples:
      evidence watch add iastm --query "instrument assisted soft tissue mobilization" --since 2024-01-01
      evidence watch add gua-sha --query "gua sha randomized" --type any
    """
    from evidence.watch.searches import add_search

    def work(session: Any) -> str:
        return add_search(session, name, query, since=since, work_type=work_type).name

    saved = state.database().write(work)
    click.echo(f"saved search {saved}; run it with `evidence watch run {saved}`", err=True)


@watch.command(name="list")
@output_options
@pass_state
def watch_list(state: AppState, fmt: str, columns: str | None, output: str | None) -> None:
    """The saved searches, with their last run and what they found.

    \b
    Examples:
      evidence watch list
      evidence watch list --format json
    """
    from evidence.watch.searches import list_searches

    with state.database().transaction() as session:
        rows = list_searches(session)
    emit_rows(
        rows, fmt, output, columns, table_columns=WATCH_TABLE, empty="no saved search (evidence watch add)"
    )


@watch.command(name="remove")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def watch_remove(state: AppState, name: str, yes: bool) -> None:
    """Forget a saved search and its pending candidates (decisions and included studies stay).

    \b
    Examples:
      evidence watch remove gua-sha --yes
    """
    from evidence.watch.searches import get_search, remove_search

    with state.database().transaction() as session:
        found = get_search(session, name).name
    if not yes:
        confirm_or_stop(
            f"Remove the saved search {found} and its pending candidates?", "not removed", "remove it"
        )
    result = state.database().write(lambda session: remove_search(session, found))
    click.echo(
        f"removed {found}: {result['pending_removed']} pending candidates forgotten, "
        f"{result['decided_kept']} decisions kept",
        err=True,
    )


@watch.command(name="run")
@click.argument("names", nargs=-1)
@click.option("--max", "max_works", type=click.IntRange(min=1, max=100_000), default=1000, show_default=True,
              help="At most this many works per search in this run (the next run goes on).")  # fmt: skip
@pass_state
def watch_run(state: AppState, names: tuple[str, ...], max_works: int) -> None:
    """Run saved searches (all, without NAMEs): new works become candidates for triage.

    Each page of results is stored as it arrives, with Crossref's cursor for the next, so an interrupted
    run keeps what it stored and the next run goes on from there. Exit 1 if a search failed.

    \b
    Examples:
      evidence watch run
      evidence watch run iastm-trials --max 200
    """
    from evidence import enrich
    from evidence.crossref import unreachable
    from evidence.watch.run import run_searches

    client = enrich.make_client(state.settings)
    runs, stopped = run_searches(state.database(), client, names, max_works=max_works)
    for run in runs:
        click.echo(run.summary(), err=True)
    if stopped is not None:
        raise click.ClickException(str(unreachable(stopped)))
    if any(run.error for run in runs):
        raise click.ClickException("a saved search failed (see above); run it again to go on")


@cli.group(invoke_without_command=True)
@click.option("--search", "searches", multiple=True, metavar="NAME", help="Only candidates of this search.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many.")
@click.option("--all", "show_all", is_flag=True, help="Every pending candidate.")
@output_options
@click.pass_context
def triage(
    ctx: click.Context,
    searches: tuple[str, ...],
    limit: int,
    show_all: bool,
    fmt: str,
    columns: str | None,
    output: str | None,
) -> None:
    """Screen the candidates the saved searches found: list the pending ones, include, exclude, undo.

    Without a subcommand, lists the pending candidates, oldest first (title, year, journal, first author,
    the abstract's first lines; --format json gives the whole abstract).

    \b
    Examples:
      evidence triage
      evidence triage include 12 --claim pain-modulation --stance supports --design rct
      evidence triage exclude 13 --reason not-iastm
      evidence triage undo 13
    """
    if ctx.invoked_subcommand is not None:
        return
    from evidence.watch.triage import LIST_FIELDS, pending

    state = ctx.find_object(AppState)
    assert state is not None
    with state.database().transaction() as session:
        rows, total = pending(
            session, searches=searches, limit=None if show_all else limit, preview=fmt in ("table", "csv")
        )
    emit_rows(rows, fmt, output, columns, table_columns=TRIAGE_TABLE, fields=LIST_FIELDS,
              empty="no candidate is waiting (evidence watch run finds new ones)")  # fmt: skip
    if len(rows) < total:
        click.echo(f"{len(rows)} of {total} pending candidates shown (--all for every one)", err=True)


@triage.command(name="include")
@click.argument("ref")
@click.option(
    "--claim", "claims", multiple=True, type=choice(CLAIM_NAMES), help="Claim it bears on (repeat)."
)
@click.option("--stance", type=choice(vocab.STANCES), default=None, help="Stance on every --claim given.")
@click.option("--finding", default=None, help="One-line finding for the --claim links.")
@click.option("--design", type=choice(vocab.DESIGNS), default=None, help="Study design (sets the level).")
@pass_state
def triage_include(
    state: AppState,
    ref: str,
    claims: tuple[str, ...],
    stance: str | None,
    finding: str | None,
    design: str | None,
) -> None:
    """Make candidate REF (its number or DOI) a study of the library, from Crossref's record.

    \b
    Examples:
      evidence triage include 12 --claim pain-modulation --stance no-effect --design rct \\
          --finding "No better than sham at 4 weeks"
    """
    from evidence.watch.triage import include

    def work(session: Any) -> dict[str, Any]:
        return include(session, ref, claims=claims, stance=stance, finding=finding, design=design)

    study = state.database().write(work)
    click.echo(f"included candidate {ref} as {study['citekey']} (id {study['id']})", err=True)


@triage.command(name="exclude")
@click.argument("ref")
@click.option("--reason", required=True, metavar="REASON",
              help="not-iastm, not-a-study, wrong-population, wrong-outcome, duplicate, no-full-text, "
                   "other:TEXT.")  # fmt: skip
@pass_state
def triage_exclude(state: AppState, ref: str, reason: str) -> None:
    """Leave candidate REF out, with the reason (kept with the date: it never comes back as new).

    \b
    Examples:
      evidence triage exclude 13 --reason wrong-population
      evidence triage exclude 14 --reason "other:conference abstract"
    """
    from evidence.watch.triage import exclude

    row = state.database().write(lambda session: exclude(session, ref, reason))
    click.echo(f"excluded candidate {row['id']} ({row['reason']})", err=True)


@triage.command(name="undo")
@click.argument("ref")
@pass_state
def triage_undo(state: AppState, ref: str) -> None:
    """Put candidate REF back to pending; undoing an include removes the study it made.

    \b
    Examples:
      evidence triage undo 13
    """
    from evidence.watch.triage import undo

    undone = state.database().write(lambda session: undo(session, ref))
    removed = f"; removed study {undone['removed_study']}" if undone.get("removed_study") else ""
    click.echo(f"candidate {undone['id']} is pending again (was {undone['was']}){removed}", err=True)


@cli.command()
@click.argument("names", nargs=-1)
@output_options
@pass_state
def prisma(
    state: AppState, names: tuple[str, ...], fmt: str, columns: str | None, output: str | None
) -> None:
    """PRISMA 2020 counts of the saved searches (all, without NAMEs): identified, duplicates, screened,
    excluded per reason, included.

    \b
    Examples:
      evidence prisma
      evidence prisma iastm-trials --format json
    """
    from evidence.watch.prisma import prisma_counts, prisma_rows

    with state.database().transaction() as session:
        counts = prisma_counts(session, names)
    if fmt == "json":  # one object, the counts by name (the other formats list the boxes)
        import json

        from evidence.render import open_output

        with open_output(output) as out:
            out.write(json.dumps(counts, indent=2) + "\n")
        return
    emit_rows(prisma_rows(counts), fmt, output, columns, table_columns=("stage", "detail", "count"))


if __name__ == "__main__":  # pragma: no cover
    cli()
