"""`wasmctl audit` (issue 14, in progress): known vulnerabilities of the Rust crates and Go
modules inside Wasm modules, matched offline against OSV databases (`osv`), with versions
compared as SemVer (`versions`)."""
