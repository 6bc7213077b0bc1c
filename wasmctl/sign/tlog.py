"""Transparency log entries: proof that a signature was logged, and when.

Checked here for the bundles sigstore-python does not verify itself (key-signed bundles,
`intoto` entries) and for legacy cosign signatures:

- the inclusion proof: an RFC 9162 §2.1.3.2 audit path from the entry's leaf hash to the
  root hash of a tree of `treeSize` leaves;
- the checkpoint: a signed note (C2SP signed-note) by the log's key over `origin`, the tree
  size and the root hash, which must be the proof's root;
- the signed entry timestamp (SET): the log's signature over the RFC 8785 JSON of
  `{body, integratedTime, logID, logIndex}`, which makes `integratedTime` a trusted time;
- the entry body, which must describe this signature, this key or certificate, and this
  digest (a valid entry for another signature proves nothing).

The log key is looked up in the trusted root by the entry's log ID.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from wasmctl.errors import SignatureError
from wasmctl.sign.bundle import Envelope, TlogEntry
from wasmctl.sign.keys import PublicKey, spki_der, verify_signature
from wasmctl.sign.trust import LogKey, TrustedRoot

Verifier: TypeAlias = x509.Certificate | PublicKey


@dataclass(frozen=True)
class LoggedAt:
    """What a verified entry proves: the log, the index, and (with a SET) the time."""

    log_index: int
    integrated_time: datetime | None
    log_url: str


def verify_entry(
    entry: TlogEntry,
    trust: TrustedRoot,
    *,
    signature: bytes,
    verifier: Verifier,
    digest: bytes | None = None,
    envelope: Envelope | None = None,
) -> LoggedAt:
    """Check one entry against the trusted root and against what was signed.

    `digest` is the sha256 of what a message signature (hashedrekord, rekord) covers;
    `envelope` the DSSE envelope of a dsse/intoto entry. Raises `SignatureError`.
    """
    log = trust.tlog_key(entry.log_id)
    if log is None:
        raise SignatureError(
            f"log entry {entry.log_index}: log {entry.log_id.hex()[:16]} is not in the "
            f"trusted root ({trust.source})"
        )
    check_body(entry, signature=signature, verifier=verifier, digest=digest, envelope=envelope)
    if entry.inclusion_proof is None and entry.signed_entry_timestamp is None:
        raise SignatureError(
            f"log entry {entry.log_index}: neither an inclusion proof nor a signed entry timestamp"
        )
    if entry.inclusion_proof is not None:
        verify_inclusion(entry, log)
    when = None
    if entry.signed_entry_timestamp is not None:
        verify_set(entry, log)
        if entry.integrated_time is not None:
            when = datetime.fromtimestamp(entry.integrated_time, UTC)
    return LoggedAt(entry.log_index, when, log.base_url)


# -- inclusion proof and checkpoint --------------------------------------------------


def leaf_hash(body: bytes) -> bytes:
    """RFC 6962 leaf hash: sha256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + body).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: bytes, index: int, tree_size: int, path: tuple[bytes, ...]) -> bytes:
    """The root an audit path leads to (RFC 9162 §2.1.3.2); raises on a malformed path."""
    if index < 0 or index >= tree_size:
        raise SignatureError(f"inclusion proof: index {index} outside a tree of {tree_size}")
    fn, sn, r = index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            raise SignatureError("inclusion proof: more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise SignatureError("inclusion proof: fewer hashes than the tree has levels")
    return r


def verify_inclusion(entry: TlogEntry, log: LogKey) -> None:
    """The entry is in the tree the checkpoint signs."""
    proof = entry.inclusion_proof
    if proof is None:
        raise SignatureError(f"log entry {entry.log_index}: no inclusion proof")
    root = root_from_path(leaf_hash(entry.body), proof.log_index, proof.tree_size, proof.hashes)
    if root != proof.root_hash:
        raise SignatureError(
            f"log entry {entry.log_index}: inclusion proof leads to root {root.hex()}, "
            f"not to {proof.root_hash.hex()}"
        )
    if proof.checkpoint is None:
        raise SignatureError(f"log entry {entry.log_index}: inclusion proof without checkpoint")
    size, signed_root = verify_checkpoint(proof.checkpoint, log)
    if signed_root != proof.root_hash or size != proof.tree_size:
        raise SignatureError(
            f"log entry {entry.log_index}: checkpoint signs root {signed_root.hex()} of "
            f"{size} entries, not the proof's root {proof.root_hash.hex()} of {proof.tree_size}"
        )


def verify_checkpoint(note: str, log: LogKey) -> tuple[int, bytes]:
    """Check a signed note by the log's key; returns the tree size and root hash it signs."""
    text, sep, signatures = note.partition("\n\n")
    lines = text.split("\n")
    if not sep or len(lines) < 3:
        raise SignatureError("checkpoint: not a signed note")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error):
        raise SignatureError("checkpoint: malformed tree size or root hash") from None
    signed = (text + "\n").encode()
    for line in signatures.split("\n"):
        if not line.startswith("\u2014 "):
            continue
        _, _, encoded = line[2:].rpartition(" ")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        # The first 4 bytes are the key hint; the rest is the signature itself.
        if len(blob) > 4 and verify_signature(log.public_key, blob[4:], signed):
            return size, root
    raise SignatureError("checkpoint: no valid signature by the log's key")


def verify_set(entry: TlogEntry, log: LogKey) -> None:
    """The log promised to include the entry at `integratedTime` (Rekor v1's SET)."""
    if entry.integrated_time is None:
        raise SignatureError(f"log entry {entry.log_index}: a SET without an integrated time")
    payload = {
        "body": base64.b64encode(entry.body).decode(),
        "integratedTime": entry.integrated_time,
        "logID": entry.log_id.hex(),
        "logIndex": entry.log_index,
    }
    # For these four values (ints and ASCII strings) RFC 8785 is sorted compact JSON.
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    if entry.signed_entry_timestamp is None:
        raise SignatureError(f"log entry {entry.log_index}: no signed entry timestamp")
    if not verify_signature(log.public_key, entry.signed_entry_timestamp, canonical):
        raise SignatureError(f"log entry {entry.log_index}: the signed entry timestamp is invalid")


# -- the entry body ---------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """What an entry body must describe: this signature, by this key or certificate, over
    this digest (message signatures) or this envelope (DSSE)."""

    signature: bytes
    verifier: Verifier
    digest: bytes | None
    envelope: Envelope | None


def check_body(
    entry: TlogEntry,
    *,
    signature: bytes,
    verifier: Verifier,
    digest: bytes | None,
    envelope: Envelope | None,
) -> None:
    """The logged body describes this signature by this key over this content."""
    try:
        body = json.loads(entry.body)
        spec = body["spec"]
        kind = (str(body["kind"]), str(body["apiVersion"]))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, RecursionError):
        raise SignatureError(f"log entry {entry.log_index}: malformed body") from None
    if kind != (entry.kind, entry.version):
        raise SignatureError(
            f"log entry {entry.log_index}: body is {kind[0]} {kind[1]}, entry says "
            f"{entry.kind} {entry.version}"
        )
    try:
        check = _BODY_CHECKS[kind]
    except KeyError:
        raise SignatureError(
            f"log entry {entry.log_index}: unsupported entry kind {kind[0]} {kind[1]}"
        ) from None
    try:
        problem = check(spec, Signed(signature, verifier, digest, envelope))
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error):
        problem = "malformed body"
    if problem:
        raise SignatureError(f"log entry {entry.log_index}: {problem}")


def _same_verifier(encoded_pem: Any, verifier: Verifier) -> bool:
    pem = base64.b64decode(encoded_pem)
    if b"CERTIFICATE" in pem:
        logged = x509.load_pem_x509_certificate(pem)
        if isinstance(verifier, x509.Certificate):
            return logged == verifier
        return spki_der(logged.public_key()) == spki_der(verifier)
    mine = verifier.public_key() if isinstance(verifier, x509.Certificate) else verifier
    return spki_der(serialization.load_pem_public_key(pem)) == spki_der(mine)


def _message_body(spec: Mapping[str, Any], signed: Signed) -> str | None:
    """hashedrekord 0.0.1 and rekord 0.0.1: a signature over a digest."""
    if signed.digest is None:
        return "a message-signature entry for a DSSE envelope"
    sig = spec["signature"]
    if base64.b64decode(sig["content"]) != signed.signature:
        return "the logged signature is not this signature"
    if not _same_verifier(sig["publicKey"]["content"], signed.verifier):
        return "the logged key or certificate is not the signer's"
    logged = spec["data"]["hash"]
    if logged.get("algorithm") != "sha256" or bytes.fromhex(logged["value"]) != signed.digest:
        return "the logged digest is not the signed content's"
    return None


def _payload_hash_matches(logged: Mapping[str, Any], envelope: Envelope) -> bool:
    return bytes.fromhex(logged["value"]) == hashlib.sha256(envelope.payload).digest()


def _dsse_body(spec: Mapping[str, Any], signed: Signed) -> str | None:
    """dsse 0.0.1: Rekor's canonical form keeps hashes of the envelope and payload."""
    if signed.envelope is None:
        return "a DSSE entry for a message signature"
    if not _payload_hash_matches(spec["payloadHash"], signed.envelope):
        return "the logged payload hash does not match the envelope"
    for item in spec["signatures"]:
        if base64.b64decode(item["signature"]) == signed.signature and _same_verifier(
            item["verifier"], signed.verifier
        ):
            return None
    return "the logged signatures do not include this one"


def _intoto_body(spec: Mapping[str, Any], signed: Signed) -> str | None:
    """intoto 0.0.2: the envelope itself, its byte fields base64-encoded once more."""
    envelope = signed.envelope
    if envelope is None:
        return "an in-toto entry for a message signature"
    content = spec["content"]
    logged = content["envelope"]
    payload = base64.b64decode(base64.b64decode(logged["payload"]))
    if payload != envelope.payload or logged.get("payloadType") != envelope.payload_type:
        return "the logged envelope payload does not match"
    if not _payload_hash_matches(content["payloadHash"], envelope):
        return "the logged payload hash does not match the envelope"
    for item in logged["signatures"]:
        sig = base64.b64decode(base64.b64decode(item["sig"]))
        if sig == signed.signature and _same_verifier(item["publicKey"], signed.verifier):
            return None
    return "the logged signatures do not include this one"


def _intoto_v1_body(spec: Mapping[str, Any], signed: Signed) -> str | None:
    """intoto 0.0.1 (early cosign attestations): only hashes and the key are logged."""
    if signed.envelope is None:
        return "an in-toto entry for a message signature"
    if not _payload_hash_matches(spec["content"]["payloadHash"], signed.envelope):
        return "the logged payload hash does not match the envelope"
    if not _same_verifier(spec["publicKey"], signed.verifier):
        return "the logged key or certificate is not the signer's"
    return None


_BODY_CHECKS = {
    ("hashedrekord", "0.0.1"): _message_body,
    ("rekord", "0.0.1"): _message_body,
    ("dsse", "0.0.1"): _dsse_body,
    ("intoto", "0.0.2"): _intoto_body,
    ("intoto", "0.0.1"): _intoto_v1_body,
}
