"""The human-readable audit report.

A line stating the database (digest, records, age), and one per VEX document read; then
per target its findings by place: vulnerabilities, informational advisories, ignored ones
(each with its ignore), those a VEX `not_affected` statement suppressed (each with the
statement's author, justification and impact statement) and those hidden by
`--ignore-unreachable`; a finding with another VEX status says so under it; VEX
attestations that were not used, and why; then ignores that expired or matched nothing,
and a summary line with the verdict. With nothing found, one line says what was audited.

Names are never broken (issue 15): a row wider than the terminal or the pipe keeps its
leading columns aligned and moves the others, whole, to continuation lines; prose (a
summary, a reason) wraps between words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from wasmctl._console import string_console
from wasmctl._text import printable
from wasmctl.audit.model import AuditReport, Ignore, Place, Placed, Rating, TargetAudit
from wasmctl.audit.report.rows import (
    age_text,
    finding_order,
    package_count,
    short_digest,
    upgrades,
)

if TYPE_CHECKING:
    from wasmctl.audit.vex import Statement

INDENT = 2
ROW_INDENT = 4
MORE_INDENT = 8  # continuation lines of a row

_RATING_STYLE = {
    Rating.CRITICAL: "bold red",
    Rating.HIGH: "red",
    Rating.MEDIUM: "yellow",
    Rating.LOW: "cyan",
    Rating.NONE: "dim",
    Rating.UNKNOWN: "magenta",
}
_VERDICT_STYLE = {"deny": "bold red", "error": "bold magenta", "pass": "bold green"}
_REACH_STYLE = {"present": "bold", "absent": "dim", "unknown": ""}
# `fixed` (the fixed versions above the installed one) last: it is the one that grows
_HEADER = ("id", "package", "severity", "symbols", "where", "fixed")
_SECTIONS = {
    Place.ACTIVE: "vulnerabilities",
    Place.INFORMATIONAL: "informational (unmaintained, unsound, notices: never failing)",
    Place.IGNORED: "ignored",
    Place.SUPPRESSED: "suppressed by VEX (not_affected)",
}

Cell = tuple[str, str]  # (text, style)


def render_table(
    report: AuditReport, *, color: bool = False, width: int = 100, now: datetime
) -> str:
    """The report as text, no line broken inside a name."""
    console, buffer = string_console(color=color, width=width)
    out = _Writer(console if color else None, max(width, 20))
    out.pack([(w, "") for w in _database_line(report, now)], 0, INDENT)
    _vex_documents(out, report)
    findings = report.placed()
    if not findings:
        for target in report.targets:
            if target.error is not None:
                _target_error(out, target)
            _vex_rejected(out, target)
        _unmatched(out, report)
        _ignores(out, report)
        audited = _audited(report)
        verdict = report.verdict
        line = [(w, "") for w in f"No known vulnerabilities: {audited}.".split(" ")]
        out.pack([*line, (verdict.upper(), _VERDICT_STYLE[verdict])], 0)
        return out.text(buffer.getvalue())
    for target in report.targets:
        _target(out, target)
    _unmatched(out, report)
    _ignores(out, report)
    _summary(out, report)
    return out.text(buffer.getvalue())


def _database_line(report: AuditReport, now: datetime) -> list[str]:
    db = report.database
    words = [f"OSV database {short_digest(db)}:", f"{db.records:,} records"]
    if db.withdrawn:
        words[-1] += ","
        words.append(f"{db.withdrawn:,} withdrawn")
    words[-1] += ";"
    if db.newest is not None:
        words.append(f"newest record {db.newest.date().isoformat()},")
    words.append(age_text(db.age(now)))
    return words


def _audited(report: AuditReport) -> str:
    targets, packages = len(report.targets), package_count(report)
    return (
        f"{targets} target{'s' if targets != 1 else ''}, "
        f"{packages} package{'s' if packages != 1 else ''} audited"
    )


class _Writer:
    """Lines laid out here, each printed as made: rich neither wraps nor crops them, and
    without colour it is not asked at all (a thousand findings cost it a second)."""

    def __init__(self, console: Console | None, width: int) -> None:
        self.console = console
        self.width = width
        self.plain: list[str] = []

    def line(self, cells: Iterable[Cell]) -> None:
        if self.console is None:
            self.plain.append("".join(value for value, _ in cells).rstrip() + "\n")
            return
        text = Text()
        for value, style in cells:
            text.append(value, style=style or None)
        text.rstrip()
        self.console.print(text, soft_wrap=True)

    def text(self, printed: str) -> str:
        return printed if self.console is not None else "".join(self.plain)

    def pack(self, pieces: Sequence[Cell], indent: int, more: int | None = None) -> None:
        """Pieces joined by spaces, a new line (at `more`) before one that would cross
        the width; a piece wider than a line has a line of its own, whole."""
        more = indent if more is None else more
        current: list[Cell] = [(" " * indent, "")]
        used = indent
        fresh = True
        for value, style in pieces:
            if not fresh and used + 1 + len(value) > self.width:
                self.line(current)
                current, used, fresh = [(" " * more, "")], more, True
            if not fresh:
                current.append((" ", ""))
                used += 1
            current.append((value, style))
            used += len(value)
            fresh = False
        self.line(current)

    def prose(self, text: str, indent: int, style: str = "") -> None:
        self.pack([(word, style) for word in text.split()], indent)

    def fields(self, fields: Sequence[Cell], indent: int) -> None:
        """Cells packed two spaces apart, never split."""
        current: list[Cell] = [(" " * indent, "")]
        used = indent
        for value, style in fields:
            if used > indent and used + 2 + len(value) > self.width:
                self.line(current)
                current, used = [(" " * indent, "")], indent
            if used > indent:
                current.append(("  ", ""))
                used += 2
            current.append((value, style))
            used += len(value)
        self.line(current)

    @staticmethod
    def aligned(cells: Sequence[Cell], widths: Sequence[int], indent: int) -> list[Cell]:
        out: list[Cell] = [(" " * indent, "")]
        for i, (value, style) in enumerate(cells):
            if i:
                out.append(("  ", ""))
            out.append((value, style))
            if i < len(cells) - 1:
                out.append((" " * (widths[i] - len(value)), ""))
        return out


def _target(out: _Writer, target: TargetAudit) -> None:
    if target.error is not None:
        _target_error(out, target)
        return
    counts = []
    for place, one, many in (
        (Place.ACTIVE, "vulnerability", "vulnerabilities"),
        (Place.INFORMATIONAL, "informational", "informational"),
        (Place.IGNORED, "ignored", "ignored"),
        (Place.SUPPRESSED, "suppressed", "suppressed"),
        (Place.UNREACHABLE, "hidden", "hidden"),
    ):
        if n := sum(1 for p in target.findings if p.place is place):
            counts.append(f"{n} {one if n == 1 else many}")
    n = len(target.packages)
    head = [(f"{printable(target.target)}:", "bold"), (f"{n} package{'s' if n != 1 else ''},", "")]
    head += [(w, "") for w in (", ".join(counts) or "nothing found").split(" ")]
    out.line([])
    out.pack(head, 0, INDENT)
    rows = sorted(target.findings, key=finding_order)
    for place, title in _SECTIONS.items():
        placed = [p for p in rows if p.place is place]
        if placed:
            out.pack([(word, "bold") for word in title.split(" ")], INDENT, ROW_INDENT)
            _findings(out, placed)
    hidden = [p for p in rows if p.place is Place.UNREACHABLE]
    if hidden:
        _hidden(out, hidden)
    _vex_rejected(out, target)


def _vex_documents(out: _Writer, report: AuditReport) -> None:
    for target, doc in report.vex_documents:
        n = len(doc.statements)
        words = f"VEX {doc.origin.source}: {n} statement{'s' if n != 1 else ''} by".split(" ")
        words += printable(doc.origin.author).split()
        if doc.origin.signer:
            words += ["(signed", "by", *printable(doc.origin.signer).split()]
            words[-1] += ")"
        if target is not None:
            words += ["for", printable(target)]
        out.pack([(w, "") for w in words], 0, INDENT)


def _vex_rejected(out: _Writer, target: TargetAudit) -> None:
    for rejected in target.vex_rejected:
        out.pack(
            [(w, "bold yellow") for w in ["VEX", "attestation", "not", "used:"]]
            + [(printable(rejected.source) + ":", "bold")]
            + [(w, "") for w in printable(rejected.reason).split()],
            INDENT,
            ROW_INDENT,
        )


def _target_error(out: _Writer, target: TargetAudit) -> None:
    out.line([])
    out.pack(
        [(f"{printable(target.target)}:", "bold"), ("✗", "magenta")]
        + [(w, "magenta") for w in printable(target.error or "").split()],
        0,
        INDENT,
    )


def _findings(out: _Writer, placed: Sequence[Placed]) -> None:
    """The rows of one section, each followed by its prose (the summary, or the ignore),
    aligned to the widths of all rows: the columns that fit, the others labelled on a
    continuation line."""
    rows = [_cells(p) for p in placed]
    widths = [max(len(h), *(len(r[i][0]) for r in rows)) for i, h in enumerate(_HEADER)]
    shown = len(_HEADER)
    while shown > 1 and ROW_INDENT + sum(widths[:shown]) + 2 * (shown - 1) > out.width:
        shown -= 1
    out.line(out.aligned([(h.upper(), "dim") for h in _HEADER[:shown]], widths, ROW_INDENT))
    for p, row in zip(placed, rows, strict=True):
        out.line(out.aligned(row[:shown], widths, ROW_INDENT))
        if shown < len(_HEADER):
            out.fields(
                [(f"{_HEADER[i]} {row[i][0]}", row[i][1]) for i in range(shown, len(_HEADER))],
                MORE_INDENT,
            )
        if p.place is Place.IGNORED and p.ignore is not None:
            out.prose(_ignore_text(p.ignore), MORE_INDENT, "italic")
        elif p.finding.advisory.summary:
            out.prose(printable(p.finding.advisory.summary), MORE_INDENT, "dim")
        if p.vex is not None:
            out.prose(_vex_text(p.vex), MORE_INDENT, "italic")


def _cells(placed: Placed) -> list[Cell]:
    finding = placed.finding
    package, severity = finding.package, finding.severity
    if finding.advisory.informational:
        rated: Cell = (finding.advisory.informational, "blue")
    else:
        score = f" {severity.score:.1f}" if severity.score is not None else ""
        rated = (f"{severity.rating.value}{score}", _RATING_STYLE[severity.rating])
    verdict = finding.reach.verdict.value
    fixed = upgrades(finding)
    return [
        (finding.advisory.id, "bold"),
        (printable(f"{package.name}@{package.version}"), ""),
        rated,
        (verdict, _REACH_STYLE.get(verdict, "")),
        (printable(package.where), ""),
        (",".join(fixed) or "none", "green" if fixed else "dim"),
    ]


def _ignore_text(ignore: Ignore) -> str:
    until = f", until {ignore.expires.isoformat()}" if ignore.expires else ""
    return f"ignored by {printable(ignore.source)}{until}: {printable(ignore.reason)}"


def _vex_text(statement: Statement) -> str:
    """`VEX not_affected (vulnerable_code_not_present) by ACME, in vex.json: why`."""
    said = statement.impact_statement or statement.action_statement or statement.status_notes
    return f"VEX {printable(statement.describe())}" + (f": {printable(said)}" if said else "")


def _hidden(out: _Writer, hidden: Sequence[Placed]) -> None:
    count = len(hidden)
    title = (
        f"{count} finding{'s' if count != 1 else ''} hidden by --ignore-unreachable "
        f"(none of the functions {'they name' if count != 1 else 'it names'} is in the "
        "module):"
    )
    items = [
        f"{p.finding.advisory.id} ({printable(p.finding.package.name)}@"
        f"{printable(p.finding.package.version)} in {printable(p.finding.package.where)})"
        + ("," if i < count - 1 else "")
        for i, p in enumerate(hidden)
    ]
    out.pack([(w, "bold") for w in title.split(" ")] + [(item, "dim") for item in items],
             INDENT, ROW_INDENT)  # fmt: skip


def _unmatched(out: _Writer, report: AuditReport) -> None:
    rows = [(t, package, reason) for t in report.targets for package, reason in t.unmatched]
    if not rows:
        return
    out.line([])
    out.prose(
        f"{len(rows)} version{'s' if len(rows) != 1 else ''} no advisory could be compared "
        "with (neither passed nor failed):",
        0,
        "bold yellow",
    )
    for _, package, reason in rows:
        out.pack(
            [(printable(f"{package.name}@{package.version}"), "bold"),
             ("in", ""), (printable(package.where) + ":", "")]
            + [(w, "") for w in printable(reason).split()],
            INDENT,
            ROW_INDENT,
        )  # fmt: skip


def _ignores(out: _Writer, report: AuditReport) -> None:
    if report.expired:
        out.line([])
        out.line([("expired ignores (they ignore nothing now):", "bold yellow")])
        for ignore in report.expired:
            expires = ignore.expires.isoformat() if ignore.expires else "?"
            out.pack(
                [(ignore.id, "bold"), (f"expired {expires}", "yellow"),
                 (f"({printable(ignore.source)}):", "")]
                + [(w, "") for w in printable(ignore.reason).split()],
                INDENT,
                ROW_INDENT,
            )  # fmt: skip
    applied = {id(i) for i in report.applied}
    expired = {id(i) for i in report.expired}
    unused = [i for i in report.ignores if id(i) not in applied and id(i) not in expired]
    if unused:
        out.line([])
        words = [f"{i.id} ({printable(i.source)})" for i in unused]
        out.pack(
            [("ignores that matched nothing:", "dim")]
            + [(w + ("," if n < len(words) - 1 else ""), "") for n, w in enumerate(words)],
            0,
            INDENT,
        )


def _summary(out: _Writer, report: AuditReport) -> None:
    active = len(report.placed(Place.ACTIVE))
    failing = len(report.failing)
    parts = [f"{active} vulnerabilit{'ies' if active != 1 else 'y'}"]
    if active:
        parts[-1] += f" ({failing} at or above --fail-on {report.fail_on.value})"
    for place, label in (
        (Place.INFORMATIONAL, "informational"),
        (Place.IGNORED, "ignored"),
        (Place.SUPPRESSED, "suppressed by VEX"),
        (Place.UNREACHABLE, "hidden"),
    ):
        if n := len(report.placed(place)):
            parts.append(f"{n} {label}")
    errors = sum(1 for t in report.targets if t.error is not None)
    if errors:
        parts.append(f"{errors} unreadable")
    text = f"{_audited(report)}: {', '.join(parts)}."
    out.line([])
    out.pack([(w, "") for w in text.split(" ")]
             + [(report.verdict.upper(), _VERDICT_STYLE[report.verdict])], 0, INDENT)  # fmt: skip
