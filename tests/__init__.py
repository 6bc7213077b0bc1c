"""wasmctl's test suite."""
