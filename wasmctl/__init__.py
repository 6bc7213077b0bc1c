"""wasmctl: the supply-chain toolkit for WebAssembly on OCI registries.

The command line (`wasmctl`) is a thin layer over this library. Start with
`wasmctl.wasm.parse` / `wasmctl.wasm.parse_file` to read a module or component, and
`wasmctl.scan.scan_paths` / `wasmctl.scan.evaluate` to check one against an import policy.
"""

from wasmctl.errors import ExitCode, InputError, WasmctlError, WasmParseError

__version__ = "0.1.0"

__all__ = [
    "ExitCode",
    "InputError",
    "WasmParseError",
    "WasmctlError",
    "__version__",
]
