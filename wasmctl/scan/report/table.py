"""The human-readable scan report: per target, imports grouped by capability."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console
from rich.table import Table
from rich.text import Text

from wasmctl._columns import Cell, fitted_lines
from wasmctl._console import string_console
from wasmctl._render import aligned_lines
from wasmctl._text import printable
from wasmctl.scan.capabilities import Capability
from wasmctl.scan.model import ImportVerdict, Level, ScanReport, TargetReport, Verdict
from wasmctl.scan.policy import Decision

# Beyond this many rows a target's imports are written as plain aligned columns: rich
# measures and lays out every cell first (200,000 imports took minutes and a gigabyte).
RICH_ROW_LIMIT = 2_000

_DECISION_STYLE = {
    Decision.DENY: "bold red",
    Decision.WARN: "yellow",
    Decision.ALLOW: "green",
    Decision.INFO: "dim",
}
_VERDICT_STYLE = {
    Verdict.DENY: "bold red",
    Verdict.ERROR: "bold magenta",
    Verdict.WARN: "bold yellow",
    Verdict.ALLOW: "bold green",
}
_CAPABILITY_ORDER = {c: i for i, c in enumerate(Capability)}


def render_table(report: ScanReport, *, color: bool = False, width: int = 100) -> str:
    """The report as text tables, one per target, and a summary line."""
    console, buffer = string_console(color=color, width=width)
    for target in report.targets:
        _target(console, target, show_policy=len(report.policies) > 1)
    summary = Text(
        f"{len(report.targets)} target(s) scanned against {', '.join(report.policies)}: "
    )
    parts = [
        f"{report.count(v)} {label}"
        for v, label in (
            (Verdict.DENY, "denied"),
            (Verdict.ERROR, "unreadable"),
            (Verdict.WARN, "with warnings"),
            (Verdict.ALLOW, "allowed"),
        )
        if report.count(v)
    ]
    summary.append(", ".join(parts))
    summary.append("  ")
    summary.append(report.verdict.upper(), style=_VERDICT_STYLE[report.verdict])
    console.print(summary, soft_wrap=True)
    return buffer.getvalue()


def _sorted_rows(target: TargetReport) -> list[tuple[int, ImportVerdict]]:
    return sorted(
        enumerate(target.imports),
        key=lambda iv: (_CAPABILITY_ORDER[iv[1].capability], iv[0]),
    )


def _plain_rows(console: Console, target: TargetReport, *, show_policy: bool) -> None:
    def cells() -> Iterator[tuple[str, ...]]:
        last = None
        for _, v in _sorted_rows(target):
            shown = v.display_name if v.direction == "import" else f"export {v.module}"
            where = f" (nested {v.location})" if v.location else ""
            yield (
                v.capability if v.capability != last else "",
                printable(shown) + where,
                v.kind,
                v.decision,
                printable(f"{v.policy}: {v.reason}" if show_policy else v.reason),
            )
            last = v.capability

    header = ("capability", "import", "kind", "result", "decided by")
    # Written straight to the console's file: one print per row would still go through
    # rich's line rendering.
    console.file.write("".join(f"{line}\n" for line in aligned_lines(header, cells())))


def _target(console: Console, target: TargetReport, *, show_policy: bool) -> None:
    head = Text(printable(target.path), style="bold")
    if target.kind is not None:
        head.append(f"  {target.kind}, {target.size:,} bytes")
    head.append("  ")
    head.append(target.verdict.upper(), style=_VERDICT_STYLE[target.verdict])
    console.print(head, soft_wrap=True)  # rich never breaks the path; the terminal may
    if len(target.imports) > RICH_ROW_LIMIT:
        _plain_rows(console, target, show_policy=show_policy)
    elif target.imports:
        table = Table(show_edge=False, pad_edge=False, expand=False)
        longest = max(
            len(v.display_name) + (len(v.location) + 10 if v.location else 0)
            for v in target.imports
        )
        fixed = max(len(v.capability) for v in target.imports) + 6 + 20 + 12
        fixed += max(len(v.kind) for v in target.imports)
        import_width = max(16, min(longest + 1, console.width - fixed))
        if longest >= import_width:  # rich would fold a name: lay the rows out whole
            _fitted_rows(console, target, show_policy=show_policy)
            _notes(console, target)
            return
        table.add_column("capability", no_wrap=True)
        # Names stay whole where they fit: a reader greps for them.
        table.add_column("import", overflow="fold", width=import_width)
        table.add_column("kind", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("decided by", overflow="fold")
        last = None
        for _, v in _sorted_rows(target):
            shown = v.display_name if v.direction == "import" else f"export {v.module}"
            where = f" (nested {v.location})" if v.location else ""
            table.add_row(
                Text(v.capability if v.capability != last else ""),
                Text(printable(shown) + where),
                Text(v.kind),
                Text(v.decision, style=_DECISION_STYLE[v.decision]),
                Text(printable(f"{v.policy}: {v.reason}" if show_policy else v.reason)),
            )
            last = v.capability
        console.print(table)
    elif target.error is None:
        console.print(Text("  no imports", style="dim"))
    _notes(console, target)


def _fitted_rows(console: Console, target: TargetReport, *, show_policy: bool) -> None:
    """The imports as aligned columns within the width where the names allow, and every
    name whole on its line where they do not (a pipe at 100 columns, issue 15)."""
    rows: list[list[Cell]] = []
    last = None
    for _, v in _sorted_rows(target):
        shown = v.display_name if v.direction == "import" else f"export {v.module}"
        where = f" (nested {v.location})" if v.location else ""
        rows.append(
            [
                (v.capability if v.capability != last else "", ""),
                (printable(shown) + where, ""),
                (v.kind, ""),
                (v.decision, _DECISION_STYLE[v.decision]),
                (printable(f"{v.policy}: {v.reason}" if show_policy else v.reason), ""),
            ]
        )
        last = v.capability
    header = ("capability", "import", "kind", "result", "decided by")
    for line in fitted_lines(header, rows, console.width, prose=4, header_style="bold"):
        console.print(Text.assemble(*line), soft_wrap=True)


def _notes(console: Console, target: TargetReport) -> None:
    for finding in target.findings:
        if finding.module is not None:
            continue  # shown in the table above
        mark, style = ("✗", "red") if finding.level is Level.ERROR else ("!", "yellow")
        line = Text(f"  {mark} ", style=style)
        line.append(f"{finding.rule} {printable(finding.message)}")
        console.print(line, soft_wrap=True)
    if target.error is not None:
        console.print(Text(f"  ✗ {printable(target.error)}", style="magenta"), soft_wrap=True)
    console.print()
