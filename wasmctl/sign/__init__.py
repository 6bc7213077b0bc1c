"""Signing and verification: cosign keys, Sigstore bundles, and where they live in OCI."""
