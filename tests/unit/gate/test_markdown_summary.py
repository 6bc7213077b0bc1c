"""The Markdown summary (`gate --summary`, `$GITHUB_STEP_SUMMARY`) shows what an artifact
says as text: no link, image, mention, HTML or emphasis comes out of it."""

from __future__ import annotations

from markdown_it import MarkdownIt

from wasmctl.gate.engine import CheckResult, GateReport, Status, TargetResult
from wasmctl.gate.report import markdown

HOSTILE = (
    "denied [click me](https://evil.example/x) ![pixel](https://evil.example/p.png) "
    "<img src=x onerror=alert(1)> @acme/security **loud** _slanted_ `code` | cell "
    "https://evil.example/auto\n# heading"
)


def rendered(report: GateReport) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown(report))


def report_with(message: str, target: str = "ghcr.io/acme/app:v1") -> GateReport:
    check = CheckResult("scan", Status.FAIL, message)
    return GateReport("gate.yaml", (TargetResult(target, None, (check,)),))


def test_a_hostile_message_renders_as_literal_text() -> None:
    html = rendered(report_with(HOSTILE))
    for forbidden in ("<a ", "<img", "<strong>loud", "<em>", "<h1>", "<code>code</code>"):
        assert forbidden not in html, html
    # the words are all still there for the reader
    for word in ("click me", "evil.example", "acme/security", "onerror", "heading"):
        assert word in html


def test_a_hostile_target_name_stays_inside_its_code_span() -> None:
    html = rendered(report_with("denied", target="x`[a](https://evil.example)`|y"))
    assert "<a " not in html
    assert html.count("<table>") == 1 and "<td>" in html


def test_ordinary_messages_read_as_before() -> None:
    html = rendered(report_with("denied by no-network: wasi_snapshot_preview1:sock_accept"))
    assert "denied by no-network: wasi_snapshot_preview1:sock_accept" in html
