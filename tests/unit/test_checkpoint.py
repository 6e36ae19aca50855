"""Signed checkpoints and log verification: round trips, forgeries, and every kind of tampering."""

from __future__ import annotations

import base64
import dataclasses
import os
import stat
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from labelvault.audit.checkpoint import (
    ORIGIN_PREFIX,
    AuditSigner,
    Checkpoint,
    Problem,
    StoredEntry,
    append_record,
    load_public_key,
    note_key_id,
    sign,
    verify_log,
    verify_signature,
)
from labelvault.audit.merkle import EMPTY_ROOT, MerkleTree, ciphertext_digest, encode_entry, leaf_hash, root
from labelvault.errors import AuditTampered, CryptoError, InvalidInput

INSTALL = "vault-test-1"
T0 = datetime(2025, 6, 13, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def signer(tmp_path: Path) -> AuditSigner:
    return AuditSigner.initialize(tmp_path / "keys" / "audit.key")


@pytest.fixture
def other_signer(tmp_path: Path) -> AuditSigner:
    return AuditSigner.initialize(tmp_path / "other.key")


def make_log(n: int) -> list[StoredEntry]:
    tree = MerkleTree()
    return [
        append_record(
            tree,
            {
                "time": T0 + timedelta(seconds=i),
                "actor": f"user:{i % 3}",
                "action": "task.shown",
                "client_id": "client-a",
                "object_kind": "task",
                "object_id": f"t-{i}",
                "outcome": "ok",
                "ciphertext_sha256": ciphertext_digest(f"ciphertext {i}".encode()),
            },
        )
        for i in range(n)
    ]


def checkpoint_of(signer: AuditSigner, log: list[StoredEntry], size: int) -> Checkpoint:
    return sign(
        signer, install_id=INSTALL, size=size, root=root(r.leaf_hash for r in log[:size]), timestamp=T0
    )


def rehash(entries: list[bytes]) -> list[StoredEntry]:
    """What a careful attacker does after changing entries: recompute every recorded hash."""
    tree = MerkleTree()
    out = []
    for i, data in enumerate(entries):
        h = tree.append_entry(data)
        out.append(StoredEntry(seq=i, entry=data, leaf_hash=h, root=tree.root()))
    return out


def edited(record: StoredEntry, **fields: object) -> bytes:
    import json

    doc = json.loads(record.entry)  # type: ignore[arg-type]
    doc.update(fields)
    return encode_entry(doc)


# --- keys ----------------------------------------------------------------------------------------


def test_initialize_creates_a_private_key_file_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    signer = AuditSigner.initialize(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert not [p for p in path.parent.iterdir() if p.name != "audit.key"]  # no temp file left
    # Idempotent: a second initialize opens the same key instead of replacing it.
    again = AuditSigner.initialize(path)
    assert again.public_key_b64() == signer.public_key_b64()
    assert AuditSigner.open(path).fingerprint() == signer.fingerprint()


def test_open_refuses_missing_or_exposed_keys(tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match="not found"):
        AuditSigner.open(tmp_path / "nope.key")
    path = tmp_path / "audit.key"
    AuditSigner.initialize(path)
    os.chmod(path, 0o644)
    with pytest.raises(CryptoError, match="chmod 600"):
        AuditSigner.open(path)
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    os.chmod(garbage, 0o600)
    with pytest.raises(CryptoError, match="unreadable"):
        AuditSigner.open(garbage)


def test_a_raw_32_byte_key_file_is_accepted(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "raw.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    )
    os.chmod(path, 0o600)
    signer = AuditSigner.open(path)
    raw_pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signer.public_key_b64() == base64.b64encode(raw_pub).decode()


def test_public_key_exports_load_back(signer: AuditSigner) -> None:
    raw = base64.b64decode(signer.public_key_b64())
    assert len(raw) == 32
    assert signer.public_key_pem().startswith("-----BEGIN PUBLIC KEY-----")
    for form in (signer.public_key_pem(), signer.public_key_b64(), raw, signer.public_key):
        assert (
            load_public_key(form).public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            == raw
        )
    with pytest.raises(InvalidInput):
        load_public_key("not a key!")
    name, key_id, key = signer.verifier_key(INSTALL).split("+", 2)  # base64 may hold "+"
    assert name == ORIGIN_PREFIX + INSTALL
    assert key_id == note_key_id(name, signer.public_key).hex()
    assert base64.b64decode(key) == b"\x01" + raw


# --- checkpoints ---------------------------------------------------------------------------------


def test_sign_and_verify_round_trip(signer: AuditSigner) -> None:
    r = root([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
    cp = sign(signer, install_id=INSTALL, size=3, root=r, timestamp=T0)
    text = cp.to_text()
    lines = text.split("\n")
    assert lines[:5] == [
        f"labelvault-audit/v1/{INSTALL}",
        "3",
        base64.b64encode(r).decode(),
        "2025-06-13T10:00:00Z",
        "",
    ]
    assert lines[5].startswith(f"\u2014 labelvault-audit/v1/{INSTALL} ")
    assert text.endswith("\n")
    parsed = Checkpoint.parse(text)
    assert parsed == cp
    assert (parsed.install_id, parsed.size, parsed.root, parsed.timestamp) == (INSTALL, 3, r, T0)
    assert verify_signature(text, signer.public_key_pem()) == cp
    assert verify_signature(cp, signer.public_key) == cp
    # Byte-level transport: bytes, CRLF and a lost final newline are all fine.
    assert verify_signature(text.encode(), signer.public_key_b64()) == cp
    assert verify_signature(text.replace("\n", "\r\n").rstrip("\r\n"), signer.public_key) == cp


def test_time_is_normalised_to_utc_seconds(signer: AuditSigner) -> None:
    local = datetime(2025, 6, 13, 12, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=2)))
    cp = sign(signer, install_id=INSTALL, size=0, root=EMPTY_ROOT, timestamp=local)
    assert cp.timestamp == T0
    assert "2025-06-13T10:00:00Z" in cp.to_text()
    assert sign(signer, install_id=INSTALL, size=0, root=EMPTY_ROOT).timestamp.tzinfo == UTC


def _replace_line(text: str, index: int, value: str) -> str:
    lines = text.split("\n")
    lines[index] = value
    return "\n".join(lines)


def test_a_changed_root_size_time_or_signature_fails(signer: AuditSigner) -> None:
    r = root([leaf_hash(b"a"), leaf_hash(b"b")])
    text = sign(signer, install_id=INSTALL, size=2, root=r, timestamp=T0).to_text()
    other_root = base64.b64encode(root([leaf_hash(b"a"), leaf_hash(b"x")])).decode()
    forgeries = [
        _replace_line(text, 1, "3"),  # size
        _replace_line(text, 2, other_root),  # root
        _replace_line(text, 3, "2025-06-13T10:00:01Z"),  # time
        _replace_line(text, 0, f"{ORIGIN_PREFIX}another-install"),  # origin
    ]
    sig_line = text.split("\n")[5]
    name, blob = sig_line[2:].split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 0x01
    forgeries.append(_replace_line(text, 5, f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"))
    for forged in forgeries:
        with pytest.raises(AuditTampered) as info:
            verify_signature(forged, signer.public_key)
        assert info.value.code == "audit_tampered"


def test_a_checkpoint_from_another_key_fails(signer: AuditSigner, other_signer: AuditSigner) -> None:
    cp = sign(other_signer, install_id=INSTALL, size=0, root=EMPTY_ROOT, timestamp=T0)
    with pytest.raises(AuditTampered, match="not signed by this audit key") as info:
        verify_signature(cp.to_text(), signer.public_key)
    assert info.value.details["reason"] == "unknown_key"
    # A cosignature by a second key is ignored, and ours still verifies.
    both = signer.sign(cp)
    assert len(both.signatures) == 2
    assert verify_signature(both.to_text(), signer.public_key) == both
    assert verify_signature(both.to_text(), other_signer.public_key) == both
    # Signing twice with the same key keeps one signature of ours.
    assert len(signer.sign(both).signatures) == 2


def test_a_signature_claiming_our_key_id_must_verify(signer: AuditSigner) -> None:
    cp = sign(signer, install_id=INSTALL, size=0, root=EMPTY_ROOT, timestamp=T0)
    ours = cp.signatures[0]
    bogus = dataclasses.replace(ours, signature=bytes(64))
    with pytest.raises(AuditTampered, match="bad signature"):
        verify_signature(dataclasses.replace(cp, signatures=(bogus, ours)), signer.public_key)


_ROOT64 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
_SIG = "\u2014 k AAAAAAA=\n"


def _note(
    origin: str = ORIGIN_PREFIX + INSTALL,
    size: str = "0",
    root64: str = _ROOT64,
    time: str = "2025-06-13T10:00:00Z",
    sigs: str = _SIG,
) -> str:
    return f"{origin}\n{size}\n{root64}\n{time}\n\n{sigs}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "just one line\n",
        f"{ORIGIN_PREFIX}{INSTALL}\n1\n{_ROOT64}\n2025-06-13T10:00:00Z\n",  # no blank line, no signature
        _note(sigs=""),  # no signature
        _note(origin="other-log/v1/x"),
        _note(origin=ORIGIN_PREFIX + "has space"),
        _note(origin=ORIGIN_PREFIX + INSTALL + "\t"),  # control character
        _note(size="01"),  # not canonical
        _note(size="-1"),
        _note(root64="not base64!"),
        _note(root64="AAAA"),  # 3-byte root
        _note(root64=_ROOT64[:-2] + "V="),  # non-canonical base64 padding bits
        _note(time="2025-06-13 10:00"),
        _note(time="2025-02-30T10:00:00Z"),
        _note(time="2025-06-13T10:00:00.5Z"),
        _note(sigs="- k AAAAAAA=\n"),  # hyphen, not em dash
        _note(sigs="\u2014 k AA\n"),  # too short
        _note(sigs="\u2014 k+x AAAAAAA=\n"),  # key names have no "+"
        _note() + "trailing\n",
        b"\xff\xfe",
    ],
)
def test_malformed_checkpoint_text_is_refused(text: str | bytes) -> None:
    with pytest.raises(AuditTampered, match="malformed audit checkpoint"):
        Checkpoint.parse(text)


def test_unsigned_checkpoints_have_no_text_form() -> None:
    with pytest.raises(InvalidInput):
        Checkpoint(INSTALL, 0, EMPTY_ROOT, T0).to_text()
    with pytest.raises(InvalidInput):
        Checkpoint("has space", 0, EMPTY_ROOT, T0)
    with pytest.raises(InvalidInput):
        Checkpoint(INSTALL, 0, b"short", T0)
    with pytest.raises(InvalidInput):
        Checkpoint(INSTALL, 0, EMPTY_ROOT, datetime(2025, 1, 1))


# --- verify_log ------------------------------------------------------------------------------------


def test_an_intact_log_verifies_against_its_checkpoints(signer: AuditSigner) -> None:
    log = make_log(50)
    cps = [checkpoint_of(signer, log, size) for size in (0, 1, 17, 32, 50)]
    report = verify_log(log, cps, signer.public_key_b64(), install_id=INSTALL)
    assert report.ok, report.message
    assert (report.size, report.root, report.checkpoints_checked) == (50, log[-1].root, 5)
    assert report.problem is None and report.first_bad_seq is None
    report.raise_for_problem()  # no-op
    # The running root of row seq equals the root of a checkpoint of size seq + 1.
    assert all(log[cp.size - 1].root == cp.root for cp in cps if cp.size)
    # Checkpoints a client kept as text work too.
    assert verify_log(log, cps[2].to_text(), signer.public_key).ok
    assert verify_log(log, [cp.to_text() for cp in cps], signer.public_key).checkpoints_checked == 5
    assert verify_log(log, "garbage", signer.public_key).problem == Problem.BAD_CHECKPOINT
    # The log is a valid stream of bare entries and of bare leaf hashes too.
    assert verify_log([r.entry for r in log], cps, signer.public_key).ok  # type: ignore[misc]
    assert verify_log([StoredEntry(r.seq, leaf_hash=r.leaf_hash) for r in log], cps, signer.public_key).ok


def test_empty_log() -> None:
    report = verify_log([])
    assert report.ok and report.size == 0 and report.root == EMPTY_ROOT


def test_edit_is_named_by_the_leaf_hash(signer: AuditSigner) -> None:
    log = make_log(30)
    log[17] = dataclasses.replace(log[17], entry=edited(log[17], actor="someone-else"))
    report = verify_log(log)
    assert (report.ok, report.problem, report.first_bad_seq) == (False, Problem.EDITED, 17)
    assert report.size == 17  # the verified prefix
    assert "seq 17" in report.message
    with pytest.raises(AuditTampered) as info:
        report.raise_for_problem()
    assert info.value.details["first_bad_seq"] == 17


def test_edit_with_a_recomputed_leaf_hash_is_named_by_the_running_root() -> None:
    log = make_log(30)
    data = edited(log[17], outcome="denied")
    log[17] = dataclasses.replace(log[17], entry=data, leaf_hash=leaf_hash(data))
    report = verify_log(log)
    assert (report.problem, report.first_bad_seq) == (Problem.EDITED, 17)
    assert "root" in report.message


def test_edit_with_all_hashes_recomputed_is_caught_by_a_signed_checkpoint(signer: AuditSigner) -> None:
    log = make_log(40)
    cps = [checkpoint_of(signer, log, 10), checkpoint_of(signer, log, 30)]
    entries = [r.entry for r in log]
    entries[17] = edited(log[17], actor="nobody")
    forged = rehash(entries)  # type: ignore[arg-type]
    assert verify_log(forged).ok  # without a checkpoint, a full rewrite is invisible
    report = verify_log(forged, cps, signer.public_key)
    assert report.problem == Problem.CHECKPOINT_MISMATCH
    assert report.first_bad_seq is None
    assert report.bad_range == (10, 29)  # after the last good checkpoint, before the bad one
    assert report.checkpoints_checked == 1


def test_deleted_entry_is_named() -> None:
    log = make_log(30)
    del log[12]
    report = verify_log(log)
    assert (report.problem, report.first_bad_seq) == (Problem.DELETED, 12)
    assert "seq 12 is missing" in report.message


def test_deleted_last_entries_are_caught_only_with_a_checkpoint(signer: AuditSigner) -> None:
    log = make_log(30)
    cp = checkpoint_of(signer, log, 30)
    truncated = log[:25]
    assert verify_log(truncated).ok  # a tail cut off after the last checkpoint is not detectable
    report = verify_log(truncated, cp, signer.public_key)
    assert (report.problem, report.first_bad_seq, report.bad_range) == (Problem.TRUNCATED, 25, (25, 29))
    assert report.size == 25


def test_deletion_with_renumbering_is_caught_by_a_checkpoint(signer: AuditSigner) -> None:
    log = make_log(30)
    cp = checkpoint_of(signer, log, 20)
    entries = [edited(r, seq=i) for i, r in enumerate(log[:12] + log[13:])]
    report = verify_log(rehash(entries), cp, signer.public_key)
    assert report.problem == Problem.CHECKPOINT_MISMATCH
    assert report.bad_range == (0, 19)


def test_reordered_rows_are_named() -> None:
    log = make_log(30)
    log[8], log[9] = log[9], log[8]
    report = verify_log(log)
    assert (report.problem, report.first_bad_seq) == (Problem.REORDERED, 8)
    assert "seq 9 is stored before seq 8" in report.message


def test_swapped_contents_under_fixed_seq_numbers_are_named() -> None:
    # The seq column stays in order but two rows' contents (with their hashes) trade places.
    log = make_log(30)
    a, b = log[8], log[9]
    log[8] = dataclasses.replace(b, seq=8)
    log[9] = dataclasses.replace(a, seq=9)
    report = verify_log(log)
    assert (report.problem, report.first_bad_seq) == (Problem.REORDERED, 8)
    assert "is entry seq 9" in report.message


def test_duplicated_row_is_named() -> None:
    log = make_log(10)
    log.insert(5, log[4])
    report = verify_log(log)
    assert (report.problem, report.first_bad_seq) == (Problem.REORDERED, 5)


def test_bare_entry_streams_detect_deletion_and_reordering() -> None:
    entries = [r.entry for r in make_log(20)]
    deleted = entries[:6] + entries[7:]
    assert verify_log(deleted).problem == Problem.DELETED  # type: ignore[arg-type]
    assert verify_log(deleted).first_bad_seq == 6  # type: ignore[arg-type]
    swapped = list(entries)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    report = verify_log(swapped)  # type: ignore[arg-type]
    assert (report.problem, report.first_bad_seq) == (Problem.REORDERED, 3)
    report = verify_log([*entries[:5], b"not json"])  # type: ignore[list-item]
    assert (report.problem, report.first_bad_seq) == (Problem.MALFORMED, 5)
    # Arbitrary leaves are fine when the JSON check is off.
    assert verify_log([b"a", b"b", b"c"], check_entry_seq=False).root == root(
        leaf_hash(x) for x in (b"a", b"b", b"c")
    )


def test_rows_without_entry_or_hash_are_malformed() -> None:
    report = verify_log([StoredEntry(0)])
    assert (report.problem, report.first_bad_seq) == (Problem.MALFORMED, 0)


def test_bad_checkpoints_are_reported(signer: AuditSigner, other_signer: AuditSigner) -> None:
    log = make_log(10)
    foreign = checkpoint_of(other_signer, log, 5)
    report = verify_log(log, foreign, signer.public_key)
    assert report.problem == Problem.BAD_CHECKPOINT and "not signed by this audit key" in report.message
    other_install = sign(signer, install_id="elsewhere", size=5, root=log[4].root, timestamp=T0)  # type: ignore[arg-type]
    report = verify_log(log, other_install, signer.public_key, install_id=INSTALL)
    assert report.problem == Problem.BAD_CHECKPOINT
    with pytest.raises(InvalidInput):
        verify_log(log, checkpoint_of(signer, log, 5))  # a checkpoint is worthless without the key


def test_append_record_fills_in_seq_and_running_root() -> None:
    tree = MerkleTree()
    first = append_record(tree, {"time": T0, "action": "export"})
    second = append_record(tree, {"seq": 1, "time": T0, "action": "export"})
    assert (first.seq, second.seq) == (0, 1)
    assert first.leaf_hash == leaf_hash(first.entry)  # type: ignore[arg-type]
    assert second.root == tree.root() == root([first.leaf_hash, second.leaf_hash])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        append_record(tree, {"seq": 7, "time": T0, "action": "export"})


def test_verification_streams_in_bounded_memory() -> None:
    n = 30_000

    def rows() -> Iterator[StoredEntry]:
        for i in range(n):
            yield StoredEntry(seq=i, leaf_hash=leaf_hash(i.to_bytes(4, "big")))

    tracemalloc.start()
    try:
        report = verify_log(rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.size == n
    assert peak < 256 * 1024  # a list of n hashes alone would be ~2 MB
