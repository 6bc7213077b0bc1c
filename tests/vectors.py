"""Where the recorded Sigstore and cosign test vectors are (tests/assets/sigstore/README.md)."""

from __future__ import annotations

from pathlib import Path

SIGSTORE = Path(__file__).resolve().parent / "assets" / "sigstore"
CONFORMANCE = SIGSTORE / "conformance"
PRODUCTION_ROOT = SIGSTORE / "trust" / "trusted_root.production.json"
COSIGN = SIGSTORE / "cosign"

DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"


def conformance_cases() -> list[Path]:
    """Every case directory of the sigstore-conformance subset."""
    return sorted(p for p in CONFORMANCE.iterdir() if p.is_dir())
