"""The built-in scan policies: one `NAME.yaml` here for each name in `PRESETS`.

The names are listed once, here, where the command line can read them without loading the
scanner; docs/policy.md, docs/gate.schema.json and the README list them too, and
tests/test_docs.py holds each of those to this tuple.
"""

PRESETS = ("pure-compute", "no-network", "wasi-p1-strict", "wasi-p2-proxy", "proxy-wasm", "opa")
