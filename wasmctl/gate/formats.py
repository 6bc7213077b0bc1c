"""The output formats of the gate's report.

Apart from the reporters (`wasmctl.gate.report`), which load the whole gate, so that the
command line can name them in its --help and messages without loading it.
"""

from __future__ import annotations

import enum


class GateFormat(enum.StrEnum):
    """The formats `wasmctl.gate.report.render` writes."""

    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
