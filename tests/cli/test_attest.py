"""`wasmctl attest` into `oci:` layouts and files: every predicate type signs, stores and
verifies; what is signed is the artifact's digest and the file's predicate; bad predicate
files and types are refused (exit 2) before anything is signed or written."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wasmctl.cli import run
from wasmctl.sign.bundle import Bundle
from wasmctl.sign.keys import generate_key_pair, write_key_pair
from wasmctl.sign.predicate import MAX_PREDICATE

HELLO = Path(__file__).parents[2] / "examples" / "modules" / "hello.wasm"
EPOCH = "1732579200"  # 2024-11-26T00:00:00Z
SLSA_V1 = {
    "buildDefinition": {
        "buildType": "https://actions.github.io/buildtypes/workflow/v1",
        "externalParameters": {
            "workflow": {
                "ref": "refs/tags/v1.0.0",
                "repository": "https://github.com/acme/app",
                "path": ".github/workflows/release.yml",
            }
        },
    },
    "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}},
}
SLSA_V02 = {
    "builder": {
        "id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
        "generator_generic_slsa3.yml@refs/tags/v1.9.0"
    },
    "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
    "invocation": {
        "configSource": {
            "uri": "git+https://github.com/acme/app@refs/tags/v1.0.0",
            "entryPoint": ".github/workflows/release.yml",
        }
    },
}
# One predicate per type `attest` knows, and a type of its own by URI: (type, URI, file).
PREDICATES: list[tuple[str, str, Any]] = [
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2", SLSA_V02),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1", SLSA_V1),
    (
        "openvex",
        "https://openvex.dev/ns",
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://acme.example/vex/2024-001",
            "author": "Acme Security",
            "timestamp": "2024-11-26T00:00:00Z",
            "version": 1,
            "statements": [
                {
                    "vulnerability": {"name": "CVE-2024-0001"},
                    "products": [{"@id": "pkg:oci/app"}],
                    "status": "not_affected",
                    "justification": "vulnerable_code_not_present",
                }
            ],
        },
    ),
    (
        "cyclonedx",
        "https://cyclonedx.org/bom",
        {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": []},
    ),
    (
        "spdx",
        "https://spdx.dev/Document",
        {
            "spdxVersion": "SPDX-2.3",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "app",
            "dataLicense": "CC0-1.0",
            "documentNamespace": "https://acme.example/spdx/app",
        },
    ),
    (
        "vuln",
        "https://cosign.sigstore.dev/attestation/vuln/v1",
        {
            "scanner": {"uri": "pkg:github/aquasecurity/trivy", "version": "0.50.0", "result": {}},
            "metadata": {"scanStartedOn": "2024-11-26T00:00:00Z"},
        },
    ),
    ("link", "https://in-toto.io/Link/v1", {"name": "build", "command": ["make"]}),
    ("custom", "https://cosign.sigstore.dev/attestation/v1", "build 1234 passed review\n"),
    (
        "https://acme.example/attestations/review/v1",
        "https://acme.example/attestations/review/v1",
        {"reviewer": "alice", "approved": True},
    ),
]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A cosign key pair (password "pw"): scrypt once for the module."""
    return write_key_pair(generate_key_pair(b"pw"), tmp_path_factory.mktemp("keys") / "cosign")


@pytest.fixture
def layout(tmp_path: Path) -> str:
    ref = f"oci:{tmp_path / 'out'}:v1"
    assert run(["build", str(HELLO), "-t", ref]) == 0
    return ref


def write_predicate(path: Path, content: Any) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


def stored(ref: str) -> tuple[str, list[dict[str, Any]]]:
    """The artifact's digest and the in-toto statements of the bundles stored for it."""
    from wasmctl.oci.reference import parse_reference
    from wasmctl.sign.targets import find_signature_candidates

    found = find_signature_candidates(parse_reference(ref))
    statements = []
    for candidate in found.candidates:
        envelope = Bundle.from_bytes(candidate.data).envelope
        assert envelope is not None
        statements.append(json.loads(envelope.payload))
    return found.digest, statements


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` with the digest of its bytes."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def unchanged(layout: str) -> Iterator[None]:
    """Asserts, after the test, that the layout holds exactly what it held before."""
    directory = Path(layout.removeprefix("oci:").rsplit(":", 1)[0])
    before = snapshot(directory)
    yield
    assert snapshot(directory) == before


# -- every type ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "uri", "content"), PREDICATES, ids=[p[0] for p in PREDICATES])
def test_each_type_is_signed_stored_and_verified_as_its_predicate_type(
    kind: str,
    uri: str,
    content: Any,
    layout: str,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, pub = keys
    predicate = write_predicate(tmp_path / "predicate", content)
    assert run(["attest", layout, "--type", kind, "--predicate", str(predicate),
                "--key", str(key)]) == 0  # fmt: skip
    assert uri in capsys.readouterr().err

    assert run(["verify", "--attestation", kind, "--key", str(pub), layout]) == 0
    assert run(["verify", "--attestation", uri, "--key", str(pub), layout]) == 0
    assert run(["verify", "--key", str(pub), layout]) == 1  # an attestation is no signature

    digest, [statement] = stored(layout)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == uri
    [subject] = statement["subject"]
    assert subject == {"name": "out", "digest": {"sha256": digest.removeprefix("sha256:")}}
    if kind == "custom":  # cosign's wrapping of any text
        assert statement["predicate"] == {"Data": content, "Timestamp": "2024-11-26T00:00:00Z"}
    else:
        assert statement["predicate"] == content


def test_an_attestation_of_one_type_does_not_verify_as_another(
    layout: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    key, pub = keys
    predicate = write_predicate(tmp_path / "provenance.json", SLSA_V1)
    assert run(["attest", layout, "--type", "slsaprovenance1", "--predicate", str(predicate),
                "--key", str(key)]) == 0  # fmt: skip
    assert run(["verify", "--attestation", "slsaprovenance", "--key", str(pub), layout]) == 1
    assert run(["verify", "--attestation", "openvex", "--key", str(pub), layout]) == 1


def test_another_key_does_not_verify_it(
    layout: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    _, other_pub = write_key_pair(generate_key_pair(b"pw"), tmp_path / "other")
    predicate = write_predicate(tmp_path / "provenance.json", SLSA_V1)
    assert run(["attest", layout, "--type", "slsaprovenance1", "--predicate", str(predicate),
                "--key", str(keys[0])]) == 0  # fmt: skip
    assert run(["verify", "--attestation", "slsaprovenance1", "--key", str(other_pub),
                layout]) == 1  # fmt: skip


def test_the_predicate_may_come_from_standard_input(
    layout: str, keys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(json.dumps(SLSA_V1).encode()))
    monkeypatch.setattr("sys.stdin", stdin)
    assert run(["attest", layout, "--type", "slsaprovenance1", "--predicate", "-",
                "--key", str(keys[0])]) == 0  # fmt: skip
    _, [statement] = stored(layout)
    assert statement["predicate"] == SLSA_V1


def test_a_custom_predicate_is_any_text_as_cosign_takes_it(
    layout: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    text = "not JSON at all: [1, 2\n"
    predicate = write_predicate(tmp_path / "notes.txt", text)
    assert run(["attest", layout, "--type", "custom", "--predicate", str(predicate),
                "--key", str(keys[0])]) == 0  # fmt: skip
    _, [statement] = stored(layout)
    assert statement["predicate"]["Data"] == text


def test_a_file_gets_its_attestation_in_a_bundle_beside_it(
    keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = keys
    module = tmp_path / "hello.wasm"
    module.write_bytes(HELLO.read_bytes())
    predicate = write_predicate(tmp_path / "provenance.json", SLSA_V1)
    assert run(["attest", str(module), "--type", "slsaprovenance1", "--predicate",
                str(predicate), "--key", str(key)]) == 0  # fmt: skip
    bundle = tmp_path / "hello.wasm.sigstore.json"
    assert str(bundle) in capsys.readouterr().err
    statement = Bundle.from_bytes(bundle.read_bytes()).statement()
    assert statement is not None
    assert statement.digests() == ["sha256:" + hashlib.sha256(HELLO.read_bytes()).hexdigest()]
    assert statement.subjects[0].name == "hello.wasm"
    assert statement.predicate == SLSA_V1
    verify = ["verify", "--attestation", "slsaprovenance1", "--key", str(pub), str(module)]
    assert run(verify) == 0
    module.write_bytes(HELLO.read_bytes() + b"\x00")
    assert run(verify) == 1


def test_an_attestation_never_replaces_the_files_signature(
    keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = keys
    module = tmp_path / "hello.wasm"
    module.write_bytes(HELLO.read_bytes())
    assert run(["sign", str(module), "--key", str(key)]) == 0
    signature = (tmp_path / "hello.wasm.sigstore.json").read_bytes()
    predicate = write_predicate(tmp_path / "provenance.json", SLSA_V1)
    attest = ["attest", str(module), "--type", "slsaprovenance1", "--predicate", str(predicate),
              "--key", str(key)]  # fmt: skip
    capsys.readouterr()
    assert run(attest) == 2
    assert "--bundle" in capsys.readouterr().err
    assert (tmp_path / "hello.wasm.sigstore.json").read_bytes() == signature
    elsewhere = tmp_path / "hello.wasm.provenance.sigstore.json"
    assert run([*attest, "--bundle", str(elsewhere)]) == 0
    assert run(["verify", str(module), "--key", str(pub)]) == 0  # the signature, still there
    assert run(["verify", "--attestation", "slsaprovenance1", "--key", str(pub),
                "--bundle", str(elsewhere), str(module)]) == 0  # fmt: skip


def test_sbom_attest_signs_the_statement_attest_signs_for_that_sbom(
    layout: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """`sbom --attest` is `attest --type cyclonedx` of the SBOM `sbom` writes."""
    bom = tmp_path / "bom.cdx.json"
    assert run(["sbom", layout, "-o", str(bom), "--attest", "--key", str(keys[0])]) == 0
    assert run(["attest", layout, "--type", "cyclonedx", "--predicate", str(bom),
                "--key", str(keys[0])]) == 0  # fmt: skip
    _, [by_sbom, by_attest] = stored(layout)
    assert by_sbom == by_attest
    assert by_sbom["predicate"] == json.loads(bom.read_text())


# -- refused ------------------------------------------------------------------------------------


def _huge(path: Path) -> Path:
    with path.open("wb") as f:
        f.truncate(MAX_PREDICATE + 1)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _write(content: str) -> Any:
    return lambda path: write_predicate(path, content)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_write("buildType: https://example.com/v1\n"), "is not JSON"),
        (_write("[1, 2, 3]"), "is an array, not a JSON object"),
        (_write('"text"'), "is a string, not a JSON object"),
        (_write("null"), "is null, not a JSON object"),
        (_write(""), "is empty"),
        (_write('{"buildDefinition": {"buildType": NaN}}'), "NaN is not a JSON number"),
        (_write("[" * 200 + "]" * 200), "not a JSON object"),
        (_write('{"a":' * 150 + "1" + "}" * 150), "nested deeper"),
        (_huge, f"larger than {MAX_PREDICATE} bytes"),
        (_fifo, "is a FIFO, not a regular file"),
        (lambda path: path, "No such file"),
        (lambda path: path.parent, "is a directory"),
        (lambda path: write_predicate(path, SLSA_V02), "it has no buildDefinition.buildType"),
    ],
    ids=[
        "yaml",
        "array",
        "string",
        "null",
        "empty",
        "nan",
        "deep-array",
        "deep-object",
        "huge",
        "fifo",
        "missing",
        "directory",
        "slsa-v0.2-as-v1",
    ],
)
def test_a_bad_predicate_file_exits_2_and_writes_nothing(
    make: Any,
    message: str,
    layout: str,
    unchanged: None,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "in").mkdir()
    predicate = make(tmp_path / "in" / "predicate.json")
    code = run(["attest", layout, "--type", "slsaprovenance1", "--predicate", str(predicate),
                "--key", str(keys[0])])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_slsa_provenance_of_the_other_version_is_named_in_the_hint(
    layout: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predicate = write_predicate(tmp_path / "provenance.json", SLSA_V1)
    assert run(["attest", layout, "--type", "slsaprovenance", "--predicate", str(predicate),
                "--key", str(keys[0])]) == 2  # fmt: skip
    assert "--type slsaprovenance1" in capsys.readouterr().err


def test_a_predicate_not_in_utf8_is_refused(
    layout: str, unchanged: None, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    predicate = tmp_path / "latin1.txt"
    predicate.write_bytes("caf\xe9\n".encode("latin-1"))
    assert run(["attest", layout, "--type", "custom", "--predicate", str(predicate),
                "--key", str(keys[0])]) == 2  # fmt: skip


def test_a_statement_too_large_to_read_back_is_refused_before_signing(
    layout: str,
    unchanged: None,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under the file limit, but JSON's escapes of non-ASCII text triple it in the statement."""
    predicate = tmp_path / "big.json"
    predicate.write_text(json.dumps({"notes": "é" * (MAX_PREDICATE // 2 - 100)},
                                    ensure_ascii=False))  # fmt: skip
    assert predicate.stat().st_size <= MAX_PREDICATE
    assert run(["attest", layout, "--type", "https://acme.example/notes/v1", "--predicate",
                str(predicate), "--key", str(keys[0])]) == 2  # fmt: skip
    assert "a signed bundle can carry" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kind", ["slsa", "provenance", "SLSAPROVENANCE1", "cyclonedx-json", "acme.example/x/v1", ""]
)
def test_an_unknown_type_exits_2_and_writes_nothing(
    kind: str,
    layout: str,
    unchanged: None,
    keys: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    predicate = write_predicate(tmp_path / "provenance.json", SLSA_V1)
    assert run(["attest", layout, "--type", kind, "--predicate", str(predicate),
                "--key", str(keys[0])]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert repr(kind) in err
    assert "slsaprovenance1" in err  # the aliases are listed


def test_the_type_and_the_predicate_are_required(layout: str, tmp_path: Path) -> None:
    predicate = write_predicate(tmp_path / "provenance.json", SLSA_V1)
    assert run(["attest", layout, "--predicate", str(predicate), "--key", "k"]) == 2
    assert run(["attest", layout, "--type", "slsaprovenance1", "--key", "k"]) == 2


def test_a_bundle_path_is_for_files_and_a_bare_name_is_refused(
    keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predicate = write_predicate(tmp_path / "provenance.json", SLSA_V1)
    common = ["--type", "slsaprovenance1", "--predicate", str(predicate), "--key", str(keys[0])]
    assert run(["attest", f"oci:{tmp_path / 'out'}:v1", *common, "--bundle", "b.json"]) == 2
    assert run(["attest", "acme/app:v1", *common]) == 2
    assert "no registry host" in capsys.readouterr().err


def test_verify_and_the_gate_refuse_an_unknown_bare_word_as_a_type(
    layout: str, keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Taken as a URI, `slsa` would match nothing, and the answer would be "no" (exit 1)
    for a typo; it is bad input."""
    assert run(["verify", "--attestation", "slsa", "--key", str(keys[1]), layout]) == 2
    assert "unknown predicate type 'slsa'" in capsys.readouterr().err
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        f"version: 1\nsignatures: {{keys: [{keys[1]}]}}\n"
        "attestations: [{predicateType: provenance}]\n"
    )
    assert run(["gate", "--policy", str(policy), layout]) == 2
    assert "attestations[0].predicateType" in capsys.readouterr().err
