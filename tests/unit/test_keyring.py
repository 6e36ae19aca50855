"""The file keyring and data ciphers, on real files with real AES-GCM."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from labelvault.crypto import keyring as keyring_module
from labelvault.crypto.keyring import DataCipher, Keyring
from labelvault.errors import CryptoError


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def ring(keys_dir: Path) -> Keyring:
    ring = Keyring.initialize(keys_dir)
    for client_id in (1, 2):
        ring.create_client_key(client_id)
    return ring


def cipher_for(ring: Keyring, client_id: int) -> tuple[bytes, DataCipher]:
    wrapped = ring.new_data_key(client_id)
    return wrapped, ring.data_cipher(client_id, wrapped)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def master_bytes(keys_dir: Path) -> bytes:
    return base64.b64decode((keys_dir / "master.key").read_bytes().strip())


# -- data ciphers -----------------------------------------------------------------------------


def test_seal_open_round_trip(ring: Keyring) -> None:
    _, cipher = cipher_for(ring, 1)
    blob = cipher.seal("task.payload", 42, b'{"text": "hello"}')
    assert b"hello" not in blob
    assert cipher.open("task.payload", 42, blob) == b'{"text": "hello"}'
    assert cipher.open("task.payload", 42, memoryview(blob)) == b'{"text": "hello"}'


def test_other_client_cannot_open(ring: Keyring) -> None:
    _, mine = cipher_for(ring, 1)
    _, theirs = cipher_for(ring, 2)
    blob = mine.seal("task.payload", 42, b"secret")
    with pytest.raises(CryptoError, match=r"cannot decrypt task\.payload 42 of client 2"):
        theirs.open("task.payload", 42, blob)


def test_same_data_key_under_another_client_id_does_not_open(ring: Keyring) -> None:
    # Even with the very same key, the client id in the AAD keeps ciphertexts where they belong.
    key = os.urandom(32)
    blob = DataCipher(1, key).seal("answer.value", 7, b"x")
    with pytest.raises(CryptoError):
        DataCipher(2, key).open("answer.value", 7, blob)


def test_other_object_or_kind_cannot_open(ring: Keyring) -> None:
    _, cipher = cipher_for(ring, 1)
    blob = cipher.seal("task.payload", 42, b"secret")
    with pytest.raises(CryptoError, match=r"cannot decrypt task\.payload 43 of client 1"):
        cipher.open("task.payload", 43, blob)
    with pytest.raises(CryptoError, match=r"cannot decrypt task\.suggestions 42"):
        cipher.open("task.suggestions", 42, blob)


def test_flipped_byte_and_short_blob_fail(ring: Keyring) -> None:
    _, cipher = cipher_for(ring, 1)
    blob = cipher.seal("task.payload", 1, b"secret" * 10)
    for index in (0, 12, len(blob) - 1):  # nonce, ciphertext, tag
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(CryptoError):
            cipher.open("task.payload", 1, bytes(tampered))
    for short in (b"", blob[:5], blob[:27]):
        with pytest.raises(CryptoError):
            cipher.open("task.payload", 1, short)


def test_nonces_differ_for_identical_plaintexts(ring: Keyring) -> None:
    _, cipher = cipher_for(ring, 1)
    blobs = [cipher.seal("task.payload", 1, b"same") for _ in range(100)]
    blobs += cipher.seal_many("task.payload", [(1, b"same")] * 100)
    assert len({blob[:12] for blob in blobs}) == 200
    assert len(set(blobs)) == 200


def test_seal_many_and_open_many_match_single_calls(ring: Keyring) -> None:
    _, cipher = cipher_for(ring, 1)
    items = [(i, f"payload {i}".encode()) for i in range(50)]
    blobs = cipher.seal_many("task.payload", iter(items))
    assert [cipher.open("task.payload", i, blob) for (i, _), blob in zip(items, blobs, strict=True)] == [
        p for _, p in items
    ]
    assert cipher.open_many("task.payload", [(i, b) for (i, _), b in zip(items, blobs, strict=True)]) == [
        p for _, p in items
    ]
    with pytest.raises(CryptoError, match=r"task\.payload 1 of client 1"):
        cipher.open_many("task.payload", [(0, blobs[0]), (1, blobs[0])])


def test_kind_may_not_contain_separator(ring: Keyring) -> None:
    _, cipher = cipher_for(ring, 1)
    with pytest.raises(CryptoError, match="may not contain"):
        cipher.seal("task|payload", 1, b"x")


def test_data_cipher_is_cached(ring: Keyring) -> None:
    wrapped, cipher = cipher_for(ring, 1)
    assert ring.data_cipher(1, wrapped) is cipher
    assert ring.data_cipher(1, memoryview(wrapped)) is cipher


# -- key files --------------------------------------------------------------------------------


def test_key_files_are_private(ring: Keyring, keys_dir: Path) -> None:
    assert mode(keys_dir / "master.key") == 0o600
    assert mode(keys_dir) == 0o700
    assert mode(keys_dir / "clients") == 0o700
    assert mode(keys_dir / "clients" / "1.key") == 0o600
    assert len(master_bytes(keys_dir)) == 32


def test_client_key_file_is_versioned_and_holds_no_plain_key(ring: Keyring, keys_dir: Path) -> None:
    record = json.loads((keys_dir / "clients" / "1.key").read_bytes())
    assert record["format"] == "labelvault-client-key"
    assert record["version"] == 1
    assert record["client_id"] == 1
    assert record["wrapping"] == {"by": "master", "alg": "A256GCM", "master_id": ring.master_key_id}
    assert len(base64.b64decode(record["ciphertext"])) == 32 + 16


def test_data_key_of_client_1_does_not_unwrap_as_client_2(ring: Keyring) -> None:
    wrapped = ring.new_data_key(1)
    with pytest.raises(CryptoError, match="client 2"):
        ring.data_cipher(2, wrapped)


def test_client_key_file_moved_to_another_client_does_not_open(ring: Keyring, keys_dir: Path) -> None:
    clients = keys_dir / "clients"
    record = json.loads((clients / "1.key").read_bytes())
    record["client_id"] = 3  # an attacker also edits the id inside
    (clients / "3.key").write_text(json.dumps(record))
    with pytest.raises(CryptoError, match="does not open"):
        ring.new_data_key(3)


def test_tampered_client_key_file_fails(ring: Keyring, keys_dir: Path) -> None:
    path = keys_dir / "clients" / "1.key"
    record = json.loads(path.read_bytes())
    raw = bytearray(base64.b64decode(record["ciphertext"]))
    raw[0] ^= 1
    record["ciphertext"] = base64.b64encode(raw).decode()
    path.write_text(json.dumps(record))
    with pytest.raises(CryptoError, match="key of client 1 does not open"):
        Keyring.open(keys_dir).new_data_key(1)


def test_create_client_key_twice_is_an_error(ring: Keyring) -> None:
    assert ring.has_client_key(1)
    assert not ring.has_client_key(3)
    with pytest.raises(CryptoError, match="client 1 has a key already"):
        ring.create_client_key(1)
    assert ring.client_ids() == [1, 2]


def test_unknown_client_has_no_key(ring: Keyring) -> None:
    with pytest.raises(CryptoError, match="no key for client 9"):
        ring.new_data_key(9)
    with pytest.raises(CryptoError, match="invalid client id"):
        ring.has_client_key("../1")  # type: ignore[arg-type]


# -- master key -------------------------------------------------------------------------------


def test_missing_master_key_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match=r"no master key at .*master\.key"):
        Keyring.open(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CryptoError, match="no master key"):
        Keyring.open(empty)


def test_initialize_is_idempotent(keys_dir: Path) -> None:
    first = Keyring.initialize(keys_dir)
    first.create_client_key(1)
    wrapped = first.new_data_key(1)
    blob = first.data_cipher(1, wrapped).seal("t", 1, b"kept")
    second = Keyring.initialize(keys_dir)
    assert second.master_key_id == first.master_key_id
    assert second.data_cipher(1, wrapped).open("t", 1, blob) == b"kept"


def test_initialize_refuses_to_orphan_client_keys(ring: Keyring, keys_dir: Path) -> None:
    (keys_dir / "master.key").unlink()
    with pytest.raises(CryptoError, match="refusing to create a new master key"):
        Keyring.initialize(keys_dir)


def test_master_key_from_a_secret_manager(ring: Keyring, keys_dir: Path, tmp_path: Path) -> None:
    wrapped = ring.new_data_key(1)
    blob = ring.data_cipher(1, wrapped).seal("t", 1, b"x")
    external = Keyring.open(keys_dir, master_key=master_bytes(keys_dir))
    assert external.data_cipher(1, wrapped).open("t", 1, blob) == b"x"
    with pytest.raises(CryptoError, match="32 bytes"):
        Keyring.open(keys_dir, master_key=b"short")
    fresh = tmp_path / "external-keys"
    Keyring.open(fresh, master_key=os.urandom(32)).create_client_key(5)
    assert (fresh / "clients" / "5.key").exists()
    assert not (fresh / "master.key").exists()


def test_wrong_master_key_does_not_open_client_keys(ring: Keyring, keys_dir: Path) -> None:
    with pytest.raises(CryptoError, match="key of client 1 does not open under the master key"):
        Keyring.open(keys_dir, master_key=os.urandom(32)).new_data_key(1)


# -- destroying a client key (crypto-shredding) -----------------------------------------------


def test_destroy_client_key(ring: Keyring, keys_dir: Path) -> None:
    wrapped = ring.new_data_key(1)  # what the database (and its backups) hold
    blob = ring.data_cipher(1, wrapped).seal("task.payload", 1, b"secret")
    other_wrapped, other = cipher_for(ring, 2)
    other_blob = other.seal("task.payload", 1, b"other")

    assert ring.destroy_client_key(1) is True
    assert not (keys_dir / "clients" / "1.key").exists()
    assert not ring.has_client_key(1)
    with pytest.raises(CryptoError, match="key of client 1 has been destroyed"):
        ring.data_cipher(1, wrapped)
    with pytest.raises(CryptoError, match="has been destroyed"):
        ring.new_data_key(1)

    # A restored database backup plus the master key (and even a new key for the same id) is useless.
    restored = Keyring.open(keys_dir, master_key=master_bytes(keys_dir))
    with pytest.raises(CryptoError, match="has been destroyed"):
        restored.data_cipher(1, wrapped)
    restored.create_client_key(1)
    with pytest.raises(CryptoError, match="data key does not open"):
        restored.data_cipher(1, wrapped)
    # No file left anywhere in the key directory opens the old data key.
    master = AESGCM(master_bytes(keys_dir))
    for path in keys_dir.rglob("*"):
        if path.is_file() and path.suffix == ".key" and path.parent.name == "clients":
            record = json.loads(path.read_bytes())
            kek = master.decrypt(
                base64.b64decode(record["nonce"]),
                base64.b64decode(record["ciphertext"]),
                b"labelvault/kek/v1/%d/%s" % (record["client_id"], record["key_id"].encode()),
            )
            with pytest.raises(InvalidTag):
                AESGCM(kek).decrypt(wrapped[1:13], wrapped[13:], b"labelvault/dek/v1/1")

    # Other clients are untouched.
    assert ring.data_cipher(2, other_wrapped).open("task.payload", 1, other_blob) == b"other"
    del blob


def test_destroy_is_seen_by_other_processes(ring: Keyring, keys_dir: Path) -> None:
    wrapped = ring.new_data_key(1)
    other_process = Keyring.open(keys_dir, revalidate_seconds=0)
    cipher = other_process.data_cipher(1, wrapped)
    assert cipher.open("t", 1, cipher.seal("t", 1, b"x")) == b"x"
    ring.destroy_client_key(1)
    with pytest.raises(CryptoError, match="has been destroyed"):
        other_process.data_cipher(1, wrapped)


def test_destroy_unknown_client_is_a_no_op(ring: Keyring) -> None:
    assert ring.destroy_client_key(9) is False
    with pytest.raises(CryptoError, match="no key for client 9"):
        ring.new_data_key(9)


# -- master rotation --------------------------------------------------------------------------


def seal_some(ring: Keyring) -> dict[int, tuple[bytes, bytes]]:
    sealed = {}
    for client_id in ring.client_ids():
        wrapped, cipher = cipher_for(ring, client_id)
        sealed[client_id] = (wrapped, cipher.seal("task.payload", client_id, b"before %d" % client_id))
    return sealed


def assert_opens(ring: Keyring, sealed: dict[int, tuple[bytes, bytes]]) -> None:
    for client_id, (wrapped, blob) in sealed.items():
        cipher = ring.data_cipher(client_id, wrapped)
        assert cipher.open("task.payload", client_id, blob) == b"before %d" % client_id


def test_rotate_master(ring: Keyring, keys_dir: Path) -> None:
    ring.create_client_key(3)
    sealed = seal_some(ring)
    old_master = master_bytes(keys_dir)
    old_id = ring.master_key_id
    other_process = Keyring.open(keys_dir)  # holds the old master in memory

    ring.rotate_master()

    assert ring.master_key_id != old_id
    assert master_bytes(keys_dir) != old_master
    assert mode(keys_dir / "master.key") == 0o600
    assert sorted(p.name for p in keys_dir.iterdir()) == [".lock", "clients", "master.key"]
    assert sorted(p.name for p in (keys_dir / "clients").iterdir()) == ["1.key", "2.key", "3.key"]
    assert_opens(ring, sealed)
    assert_opens(Keyring.open(keys_dir), sealed)
    # The process opened before the rotation re-reads master.key when a client file does not open.
    assert_opens(other_process, sealed)
    other_process.create_client_key(4)
    assert json.loads((keys_dir / "clients" / "4.key").read_bytes())["wrapping"]["master_id"] == (
        ring.master_key_id
    )
    # The old master no longer unwraps any client key file.
    with pytest.raises(CryptoError, match="does not open under the master key"):
        Keyring.open(keys_dir, master_key=old_master).data_cipher(1, sealed[1][0])
    for client_id in (1, 2, 3):
        record = json.loads((keys_dir / "clients" / f"{client_id}.key").read_bytes())
        with pytest.raises(InvalidTag):
            AESGCM(old_master).decrypt(
                base64.b64decode(record["nonce"]),
                base64.b64decode(record["ciphertext"]),
                b"labelvault/kek/v1/%d/%s" % (client_id, record["key_id"].encode()),
            )


def test_rotate_external_master(keys_dir: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    ring = Keyring.open(keys_dir, master_key=old)
    ring.create_client_key(1)
    sealed = seal_some(ring)
    with pytest.raises(CryptoError, match="secret manager"):
        ring.rotate_master()
    ring.rotate_master(new)
    assert_opens(Keyring.open(keys_dir, master_key=new), sealed)
    with pytest.raises(CryptoError):
        Keyring.open(keys_dir, master_key=old).data_cipher(1, sealed[1][0])


class Crash(Exception):
    pass


def crash_on_replace(monkeypatch: pytest.MonkeyPatch, target_name: str, nth: int = 1) -> None:
    """Simulate a crash: the nth os.replace onto a file named target_name raises."""
    real_replace = os.replace
    seen = {"n": 0}

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == target_name:
            seen["n"] += 1
            if seen["n"] == nth:
                raise Crash
        real_replace(src, dst)

    monkeypatch.setattr(keyring_module.os, "replace", replace)


def test_crash_before_commit_keeps_the_old_master(
    ring: Keyring, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = seal_some(ring)
    old_id = ring.master_key_id
    crash_on_replace(monkeypatch, "master.key")
    with pytest.raises(Crash):
        ring.rotate_master()
    monkeypatch.undo()
    assert (keys_dir / "master.key.new").exists()
    assert_opens(Keyring.open(keys_dir), sealed)  # readers never look at staged files
    recovered = Keyring.initialize(keys_dir)  # rolls the rotation back
    assert recovered.master_key_id == old_id
    assert sorted(p.name for p in keys_dir.iterdir()) == [".lock", "clients", "master.key"]
    assert sorted(p.name for p in (keys_dir / "clients").iterdir()) == ["1.key", "2.key"]
    assert_opens(recovered, sealed)


def test_crash_after_commit_is_finished_on_recovery(
    ring: Keyring, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = seal_some(ring)
    old_id = ring.master_key_id
    old_process = Keyring.open(keys_dir)
    crash_on_replace(monkeypatch, "2.key")  # 1.key re-wrapped, 2.key still under the old master
    with pytest.raises(Crash):
        ring.rotate_master()
    monkeypatch.undo()
    assert (keys_dir / "master.key.previous").exists()
    assert (keys_dir / "clients" / "2.key.new").exists()
    # Mixed state: new loaders hold both masters; old ones re-read them.
    assert_opens(Keyring.open(keys_dir), sealed)
    assert_opens(old_process, sealed)
    recovered = Keyring.initialize(keys_dir)  # finishes the rotation
    assert recovered.master_key_id != old_id
    assert sorted(p.name for p in keys_dir.iterdir()) == [".lock", "clients", "master.key"]
    assert sorted(p.name for p in (keys_dir / "clients").iterdir()) == ["1.key", "2.key"]
    for client_id in (1, 2):
        record = json.loads((keys_dir / "clients" / f"{client_id}.key").read_bytes())
        assert record["wrapping"]["master_id"] == recovered.master_key_id
    assert_opens(Keyring.open(keys_dir), sealed)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_process_does_not_reuse_the_parents_nonces(ring: Keyring) -> None:
    _, cipher = cipher_for(ring, 1)
    cipher.seal("t", 1, b"x")  # the nonce pool is filled now, and a fork would copy it
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.write(write_end, cipher.seal("t", 1, b"x")[:12])
        finally:
            os._exit(0)
    os.close(write_end)
    child_nonce = os.read(read_end, 12)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_nonce) == 12
    assert cipher.seal("t", 1, b"x")[:12] != child_nonce
