"""RFC 9162 Merkle tree: known answers, the recursive definitions, proofs for every small shape."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any

import orjson
import pytest

from labelvault.audit import merkle
from labelvault.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ciphertext_digest,
    consistency_proof,
    decode_entry,
    encode_entry,
    entry_seq,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from labelvault.errors import InvalidInput

# --- reference implementation: the RFC 9162 §2.1 definitions, written recursively and naively ----


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes, RFC 9162 §2.1.1."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 §2.1.3.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [ref_mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], b), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def flip(b: bytes, i: int = 0) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


LEAVES = [leaf_hash(f"entry {i}".encode()) for i in range(72)]

# Certificate Transparency reference data (RFC 6962 test vectors, as in transparency-dev/merkle).
CT_ENTRIES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_LEAVES = [leaf_hash(e) for e in CT_ENTRIES]


# --- hashing ------------------------------------------------------------------------------------


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert MerkleTree().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)
    # A node cannot be replayed as a leaf: the prefixes differ.
    assert leaf_hash(left + right) != node_hash(left, right)


def test_certificate_transparency_reference_roots() -> None:
    for size, expected in enumerate(CT_ROOTS):
        assert root(CT_LEAVES[:size]).hex() == expected, size


def test_incremental_tree_equals_recursive_definition_for_sizes_0_to_70() -> None:
    tree = MerkleTree()
    for size in range(71):
        assert tree.size == size == len(tree)
        assert tree.root() == ref_mth(LEAVES[:size]), size
        assert root(LEAVES[:size]) == ref_mth(LEAVES[:size])
        # O(log n) state: one subtree root per set bit of the size.
        assert len(tree.frontier) == size.bit_count()
        tree.append(LEAVES[size])


def test_tree_resumes_from_its_frontier() -> None:
    tree = MerkleTree.from_leaf_hashes(LEAVES[:45])
    resumed = MerkleTree.from_frontier(tree.size, tree.frontier)
    copy = tree.copy()
    for h in LEAVES[45:60]:
        resumed.append(h)
        tree.append(h)
    assert resumed.root() == tree.root() == ref_mth(LEAVES[:60])
    assert copy.root() == ref_mth(LEAVES[:45])  # the copy did not move
    with pytest.raises(InvalidInput):
        MerkleTree.from_frontier(5, tree.frontier[:1])
    with pytest.raises(InvalidInput):
        MerkleTree().append(b"short")


def test_append_entry_returns_the_leaf_hash() -> None:
    tree = MerkleTree()
    assert tree.append_entry(b"x") == leaf_hash(b"x")
    assert tree.root() == leaf_hash(b"x")


# --- inclusion (RFC 9162 §2.1.3) ------------------------------------------------------------------


def test_inclusion_proofs_for_every_leaf_of_every_tree_up_to_40() -> None:
    for n in range(1, 41):
        leaves = LEAVES[:n]
        r = ref_mth(leaves)
        for m in range(n):
            proof = inclusion_proof(LEAVES, m, n)
            assert proof == ref_path(m, leaves), (m, n)
            assert verify_inclusion(leaves[m], m, n, proof, r), (m, n)
            # Any changed byte, of the proof, the root or the leaf, fails.
            for i in range(len(proof)):
                bad = [*proof[:i], flip(proof[i], i % 32), *proof[i + 1 :]]
                assert not verify_inclusion(leaves[m], m, n, bad, r), (m, n, i)
            assert not verify_inclusion(leaves[m], m, n, proof, flip(r, 31))
            assert not verify_inclusion(flip(leaves[m]), m, n, proof, r)
            # Wrong position, too long or too short a path.
            if n > 1:
                other = (m + 1) % n
                assert not verify_inclusion(leaves[m], other, n, proof, r), (m, n)
            assert not verify_inclusion(leaves[m], m, n, [*proof, r], r)
            if proof:
                assert not verify_inclusion(leaves[m], m, n, proof[:-1], r)


def test_inclusion_rejects_impossible_positions() -> None:
    r = root(LEAVES[:5])
    assert not verify_inclusion(LEAVES[5], 5, 5, [], r)
    assert not verify_inclusion(LEAVES[0], -1, 5, [], r)
    assert not verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)
    with pytest.raises(InvalidInput):
        inclusion_proof(LEAVES[:5], 5)
    with pytest.raises(InvalidInput):
        inclusion_proof(LEAVES[:5], 0, 6)


def test_certificate_transparency_reference_inclusion_proofs() -> None:
    assert [p.hex() for p in inclusion_proof(CT_LEAVES, 0, 8)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [p.hex() for p in inclusion_proof(CT_LEAVES, 5, 8)] == [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]


# --- consistency (RFC 9162 §2.1.4) ----------------------------------------------------------------


def test_consistency_proofs_for_every_pair_up_to_40() -> None:
    for n in range(0, 41):
        new_root = ref_mth(LEAVES[:n])
        for m in range(0, n + 1):
            old_root = ref_mth(LEAVES[:m])
            proof = consistency_proof(LEAVES, m, n)
            expected = [] if m in (0, n) else ref_subproof(m, LEAVES[:n], True)
            assert proof == expected, (m, n)
            assert verify_consistency(m, n, old_root, new_root, proof), (m, n)
            # Changed roots fail (every tree extends the empty one, so from size 0 any new root goes).
            assert not verify_consistency(m, n, flip(old_root, 3), new_root, proof), (m, n)
            if m > 0:
                assert not verify_consistency(m, n, old_root, flip(new_root, 3), proof), (m, n)
            # Every byte of the proof matters.
            for i in range(len(proof)):
                bad = [*proof[:i], flip(proof[i], (7 * i) % 32), *proof[i + 1 :]]
                assert not verify_consistency(m, n, old_root, new_root, bad), (m, n, i)
            # Truncated or extended proofs fail.
            if proof:
                assert not verify_consistency(m, n, old_root, new_root, proof[:-1]), (m, n)
            assert not verify_consistency(m, n, old_root, new_root, [*proof, new_root]), (m, n)
            # A different old tree (one more or one fewer leaf) is not consistent under this proof.
            if 0 < m < n:
                assert not verify_consistency(m, n, ref_mth(LEAVES[: m - 1]), new_root, proof)


def test_consistency_detects_a_rewritten_history() -> None:
    # The old tree saw leaf 3; the new tree has a different leaf 3: no proof can link them.
    forged = list(LEAVES[:20])
    forged[3] = leaf_hash(b"rewritten")
    old_root = root(LEAVES[:10])
    proof = consistency_proof(forged, 10, 20)
    assert not verify_consistency(10, 20, old_root, root(forged), proof)


def test_consistency_argument_checks() -> None:
    r5 = root(LEAVES[:5])
    assert not verify_consistency(6, 5, r5, r5, [])  # shrinking is never consistent
    assert not verify_consistency(0, 5, r5, r5, [])  # a size-0 tree has the empty root
    assert verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    assert not verify_consistency(5, 5, r5, r5, [r5])
    assert not verify_consistency(2, 5, root(LEAVES[:2]), r5, [])  # RFC 9162 §2.1.4.2 step 1
    with pytest.raises(InvalidInput):
        consistency_proof(LEAVES[:5], 6, 5)
    with pytest.raises(InvalidInput):
        consistency_proof(LEAVES[:5], 2, 6)


def test_certificate_transparency_reference_consistency_proofs() -> None:
    assert [p.hex() for p in consistency_proof(CT_LEAVES, 2, 8)] == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    assert [p.hex() for p in consistency_proof(CT_LEAVES, 6, 8)] == [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    assert [p.hex() for p in consistency_proof(CT_LEAVES, 2, 5)] == [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]


# --- the example tree of RFC 9162 §2.1.5 ------------------------------------------------------------


class TestRfc9162ExampleTree:
    """The "tree with 7 leaves" of RFC 9162 §2.1.5, with its nodes named as in the figure:

                hash
               /    \\
              k      l
             / \\    / \\
            g   h  i   j
           / \\ / \\ / \\  |
           a b c d e f  d6
           | | | | | |
          d0 d1 d2 d3 d4 d5
    """

    d = [f"d{i}".encode() for i in range(7)]
    a, b, c, d_, e, f = (leaf_hash(x) for x in d[:6])
    j = leaf_hash(d[6])
    g, h, i = node_hash(a, b), node_hash(c, d_), node_hash(e, f)
    k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 - named as in the RFC figure
    hash = node_hash(k, l)
    leaves = [a, b, c, d_, e, f, j]
    hash0 = node_hash(g, c)  # size 3
    hash1 = k  # size 4
    hash2 = node_hash(k, i)  # size 6

    def test_roots(self) -> None:
        assert root(self.leaves) == self.hash
        assert root(self.leaves[:3]) == self.hash0
        assert root(self.leaves[:4]) == self.hash1
        assert root(self.leaves[:6]) == self.hash2

    def test_inclusion_proofs(self) -> None:
        # "The inclusion proof for d0 is [b, h, l]", "for d3 is [c, g, l]", "for d4 is [f, j, k]".
        assert inclusion_proof(self.leaves, 0) == [self.b, self.h, self.l]
        assert inclusion_proof(self.leaves, 3) == [self.c, self.g, self.l]
        assert inclusion_proof(self.leaves, 4) == [self.f, self.j, self.k]
        for m, proof in (
            (0, [self.b, self.h, self.l]),
            (3, [self.c, self.g, self.l]),
            (4, [self.f, self.j, self.k]),
        ):
            assert verify_inclusion(self.leaves[m], m, 7, proof, self.hash)
        # d6 sits one level up (j is its leaf hash); its path skips the missing level.
        assert inclusion_proof(self.leaves, 6) == [self.i, self.k]
        assert verify_inclusion(self.j, 6, 7, [self.i, self.k], self.hash)

    def test_consistency_proofs(self) -> None:
        # "PROOF(3, D[7]) = [c, d, g, l]": c, g rebuild hash0; d, l extend it to hash.
        proof3 = consistency_proof(self.leaves, 3, 7)
        assert proof3 == [self.c, self.d_, self.g, self.l]
        assert verify_consistency(3, 7, self.hash0, self.hash, proof3)
        # "PROOF(4, D[7]) = [l]": hash1 = k is itself a node of the new tree.
        proof4 = consistency_proof(self.leaves, 4, 7)
        assert proof4 == [self.l]
        assert verify_consistency(4, 7, self.hash1, self.hash, proof4)
        # "PROOF(6, D[7]) = [i, j, k]": k, i rebuild hash2; j extends it.
        proof6 = consistency_proof(self.leaves, 6, 7)
        assert proof6 == [self.i, self.j, self.k]
        assert verify_consistency(6, 7, self.hash2, self.hash, proof6)
        # The proofs do not transfer between sizes.
        assert not verify_consistency(4, 7, self.hash1, self.hash, proof6)
        assert not verify_consistency(6, 7, self.hash2, self.hash, proof3)


# --- canonical entries ------------------------------------------------------------------------------


def _fields(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "seq": 7,
        "time": datetime(2025, 6, 13, 10, 0, tzinfo=UTC),
        "actor": "user:42",
        "action": "task.shown",
        "client_id": "c-1",
        "object_kind": "task",
        "object_id": "t-9",
        "outcome": "ok",
        "ciphertext_sha256": ciphertext_digest(b"\x00ciphertext"),
    }
    base.update(extra)
    return base


def test_entry_encoding_is_canonical() -> None:
    data = encode_entry(_fields())
    assert data == (
        b'{"action":"task.shown","actor":"user:42","ciphertext_sha256":"'
        + ciphertext_digest(b"\x00ciphertext").encode()
        + b'","client_id":"c-1","object_id":"t-9","object_kind":"task","outcome":"ok","seq":7,'
        b'"time":"2025-06-13T10:00:00Z"}'
    )
    # Key order and the time zone of the input do not matter.
    shuffled = dict(reversed(list(_fields().items())))
    assert encode_entry(shuffled) == data
    cest = timezone(timedelta(hours=2))
    assert encode_entry(_fields(time=datetime(2025, 6, 13, 12, 0, tzinfo=cest))) == data
    assert decode_entry(data)["seq"] == 7
    assert entry_seq(data) == 7


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(depth):
        value = {"d": value}
    return value


class _Level(IntEnum):
    HIGH = 3


def test_entry_encoding_writes_int_subclasses_as_plain_numbers() -> None:
    data = encode_entry(_fields(details={"level": _Level.HIGH, "flags": [True, None, _Level.HIGH]}))
    assert b'"details":{"flags":[true,null,3],"level":3}' in data


def test_entry_encoding_is_utf8_and_nests() -> None:
    data = encode_entry(_fields(actor="Zoë", details={"reason": "conflict wall", "ids": [1, 2]}))
    assert "Zoë".encode() in data
    assert b'"details":{"ids":[1,2],"reason":"conflict wall"}' in data
    assert decode_entry(data)["actor"] == "Zoë"


@pytest.mark.parametrize(
    "fields",
    [
        {"time": "2025-06-13T10:00:00Z", "action": "x"},  # no seq
        {"seq": 1, "action": "x"},  # no time
        {"seq": -1, "time": "t", "action": "x"},
        {"seq": True, "time": "t", "action": "x"},
        {"seq": 1, "time": "t", "action": ""},
        {"seq": 1, "time": datetime(2025, 1, 1), "action": "x"},  # naive time
        {"seq": 1, "time": "t", "action": "x", "score": 0.5},  # floats differ across languages
        {"seq": 1, "time": "t", "action": "x", "payload": b"plaintext"},  # never raw bytes
        {"seq": 1, "time": "t", "action": "x", "Bad Key": 1},
        {"seq": 1, "time": "t", "action": "x", "obj": object()},
        {"seq": 1, "time": "t", "action": "x", "text": "\ud800"},  # lone surrogate
        {"seq": 1, "time": "t", "action": "x", "details": {"Bad Key": 1}},  # nested keys are checked too
        {"seq": 1, "time": "t", "action": "x", "details": {7: "x"}},
        {"seq": 1, "time": "t", "action": "x", "details": [{"ok": {"Bad": None}}]},
        {"seq": 1, "time": "t", "action": "x", "d": _nested(10)},  # nests too deeply
    ],
)
def test_entry_encoding_refuses_ambiguous_values(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        encode_entry(fields)


def test_entry_seq_of_garbage_is_none() -> None:
    assert entry_seq(b"not json") is None
    assert entry_seq(b"[1,2]") is None
    assert entry_seq(b'{"seq":"1"}') is None
    with pytest.raises(InvalidInput):
        decode_entry(b"[]")


def test_module_imports_only_errors_from_labelvault() -> None:
    import ast
    from pathlib import Path

    for module in ("merkle", "checkpoint"):
        path = Path(merkle.__file__).with_name(f"{module}.py")
        tree = ast.parse(path.read_text())
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labelvault")
        }
        imported |= {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name.startswith("labelvault")
        }
        assert imported <= {"labelvault.errors", "labelvault.audit.merkle"}, (module, imported)


# --- the encoding against the reference encoder ------------------------------------------------------
# encode_entry writes with orjson and formats times with isoformat; the leaf bytes must stay exactly
# those of the original encoder (stdlib json, strftime), copied here as the reference, and it must
# refuse exactly what that encoder refused.

_REF_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # matched whole, as merkle._KEY_RE


def _ref_time(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("audit times must be timezone-aware", details={"field": "time"})
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def _ref_canonical(value: Any, path: str, depth: int) -> Any:
    if type(value) in (str, int, bool, type(None)):
        return value
    if depth > 8:
        raise InvalidInput("audit entry nests too deeply", details={"field": path})
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, datetime):
        return _ref_time(value)
    if isinstance(value, float):
        raise InvalidInput("audit entry values may not be floats", details={"field": path})
    if isinstance(value, bytes | bytearray | memoryview):
        raise InvalidInput(
            "audit entry values may not be bytes: store ciphertext_digest(...) hex, never plaintext",
            details={"field": path},
        )
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not _REF_KEY_RE.fullmatch(k):
                raise InvalidInput(
                    "audit entry keys must be lower-case ASCII identifiers", details={"field": f"{path}.{k}"}
                )
            out[k] = _ref_canonical(v, f"{path}.{k}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_ref_canonical(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise InvalidInput(f"audit entry value of type {type(value).__name__} is not allowed", details={"field": path})


def _ref_encode_entry(fields: Mapping[str, object]) -> bytes:
    """encode_entry as it was before orjson: the definition of the leaf bytes."""
    if not isinstance(fields, Mapping):
        raise InvalidInput("an audit entry is a mapping of fields")
    missing = [f for f in ("seq", "time", "action") if f not in fields]
    if missing:
        raise InvalidInput(f"audit entry lacks {', '.join(missing)}", details={"missing": missing})
    seq = fields["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InvalidInput("seq must be a non-negative integer", details={"field": "seq"})
    action = fields["action"]
    if not isinstance(action, str) or not action:
        raise InvalidInput("action must be a non-empty string", details={"field": "action"})
    if not isinstance(fields["time"], str | datetime):
        raise InvalidInput("time must be a datetime or an RFC 3339 string", details={"field": "time"})
    doc = _ref_canonical(fields, "entry", 0)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("audit entry text is not valid Unicode") from exc


def _outcome(encode: Callable[[Any], bytes], fields: Any) -> tuple[object, ...]:
    """The bytes, or the refusal: exception type, message, details and cause type."""
    try:
        return ("bytes", encode(fields))
    except Exception as exc:
        return ("raised", type(exc), str(exc), getattr(exc, "details", None), type(exc.__cause__))


class _Outcome(StrEnum):
    OK = "ok"


class _Mark(str):
    pass


# The characters where JSON encoders differ if anywhere: escapes, hex case, DEL, C1, the JavaScript
# line separators, BOM, noncharacters, non-BMP.
_SPECIAL_CHARS = [chr(c) for c in range(0x20)] + list(
    '"\\/\x7f\x80\x9f\xa0\xe9\u2028\u2029\ufeff\ufffe\uffff\u4e2d\u6587\U0001f600\U0001f9d1\U00010000\U0010ffff'
)
_INT_EDGES = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -(2**64)]
_INT_EDGES += [2**100, -(2**100)]


def _random_text(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randrange(0, 12)):
        pick = rng.random()
        if pick < 0.5:
            out.append(rng.choice(_SPECIAL_CHARS))
        elif pick < 0.8:
            out.append(chr(rng.randrange(0x20, 0x7F)))
        else:
            c = rng.randrange(0x80, 0x110000)
            out.append(chr(c) if not 0xD800 <= c <= 0xDFFF else "x")
    return "".join(out)


def _random_key(rng: random.Random) -> Any:
    if rng.random() < 0.005:
        return rng.choice(["Bad", "a-b", "_a", "a" * 65, "\u00e9", "a\n", 7, None])  # refused
    return rng.choice("abcxyz") + "".join(rng.choice("az09_") for _ in range(rng.randrange(0, 6)))


def _random_int(rng: random.Random) -> int:
    pick = rng.random()
    if pick < 0.4:
        return rng.choice(_INT_EDGES) + rng.randrange(-2, 3)
    if pick < 0.8:
        return rng.randrange(-(2**70), 2**70) >> rng.randrange(0, 70)
    return rng.randrange(0, 10**6)


def _random_time(rng: random.Random) -> datetime:
    offset = timedelta(minutes=rng.randrange(-23 * 60, 23 * 60 + 1))
    tz = rng.choice([UTC, UTC, timezone(offset), timezone(offset, "zone")])
    # Years 2..9998 so that no offset moves the instant out of datetime's range; half of them recent.
    year = rng.randrange(1990, 2100) if rng.random() < 0.5 else rng.randrange(2, 9999)
    day = (year, rng.randrange(1, 13), rng.randrange(1, 29))
    clock = (rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.choice([0, 0, rng.randrange(1, 10**6)]))
    return datetime(*day, *clock, tzinfo=tz)


def _random_value(rng: random.Random, depth: int) -> object:
    if rng.random() < 0.01:  # refused, or refused by the UTF-8 encoding
        return rng.choice([0.5, float("nan"), b"x", bytearray(b"x"), object(), datetime(2025, 1, 1), "a\ud800"])
    pick = rng.random()
    if pick < 0.3:
        return _random_text(rng)
    if pick < 0.5:
        return _random_int(rng)
    if pick < 0.55:
        return rng.choice([True, False, None, _Level.HIGH, _Outcome.OK, _Mark("marked")])
    if pick < 0.65:
        return _random_time(rng)
    if depth >= 3:
        return None
    if pick < 0.85:
        inner = {_random_key(rng): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}
        return MappingProxyType(inner) if rng.random() < 0.1 else inner
    items = [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return tuple(items) if rng.random() < 0.2 else items


def _random_entry(rng: random.Random) -> dict[str, object]:
    fields: dict[str, object] = {
        "seq": rng.randrange(10**7) if rng.random() < 0.8 else rng.choice([0, 2**63 - 1, 2**63, 2**64, -1, True]),
        "time": _random_time(rng) if rng.random() < 0.9 else _random_text(rng),
        "action": rng.choice(["answer.submitted", "task.shown", _random_text(rng) or "a"]),
    }
    keys = ["actor", "actor_id", "client_id", "object_kind", "object_id", "outcome", "details", "ciphertext_sha256"]
    keys += [_random_key(rng) for _ in range(3)]
    for key in rng.sample(keys, rng.randrange(0, 8)):
        fields[key] = _random_value(rng, 0) if key != "details" else _random_value(rng, 2)
    return dict(rng.sample(list(fields.items()), len(fields)))  # any insertion order


def test_entry_encoding_equals_the_json_reference_on_random_entries() -> None:
    rng = random.Random(20261127)
    seen: Counter[str] = Counter()
    for _ in range(5000):
        fields = _random_entry(rng)
        expected = _outcome(_ref_encode_entry, fields)
        assert _outcome(encode_entry, fields) == expected, fields
        if expected[0] == "raised":
            seen["refused"] += 1
            continue
        # The fast path's own claim: orjson's bytes equal json's for the canonical document.
        doc = merkle._canonical(fields, "entry", 0, [])
        reference = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        assert expected[1] == reference.encode()
        try:
            assert orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) == expected[1]
            seen["orjson"] += 1
        except orjson.JSONEncodeError:  # ints beyond 64 bits: encode_entry took the json way
            seen["json"] += 1
    # Every way is exercised, the orjson one most.
    assert seen["orjson"] > 2500 and seen["json"] > 300 and seen["refused"] > 300, seen


def test_entry_encoding_equals_the_reference_for_every_character() -> None:
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    for text in (every, *every[:0x100], "\u2028\u2029\x7f", "\U0001f600\u4e2d"):
        fields = _fields(actor=text, details={"note": [text], "a": text})
        assert encode_entry(fields) == _ref_encode_entry(fields)


@pytest.mark.parametrize(
    "value",
    [2**63, 2**64 - 1, 2**64, -(2**63) - 1, -(2**64), 2**200, [1, {"n": -(2**100)}], _Level.HIGH],
)
def test_entry_encoding_writes_ints_beyond_64_bits_like_the_reference(value: object) -> None:
    fields = _fields(details={"n": value}, seq=2**70)
    assert encode_entry(fields) == _ref_encode_entry(fields)
    assert b'"seq":1180591620717411303424' in encode_entry(fields)


@pytest.mark.parametrize("text", ["\ud800", "a\udfff", "\udfff\ud800", "\ud83d\ude00", _Mark("\ud800")])
def test_entry_encoding_refuses_lone_surrogates_as_before(text: str) -> None:
    for fields in (_fields(actor=text), _fields(details={"notes": ["ok", text]})):
        with pytest.raises(InvalidInput, match=r"^audit entry text is not valid Unicode$") as caught:
            encode_entry(fields)
        assert isinstance(caught.value.__cause__, UnicodeEncodeError)
        assert _outcome(encode_entry, fields) == _outcome(_ref_encode_entry, fields)


def test_entry_encoding_of_odd_subclasses_equals_the_reference() -> None:
    class OddTime(datetime):
        text: Any = None

        def strftime(self, fmt: str) -> Any:  # not a str: json writes or refuses it, not orjson
            return self.text

    def odd_time(text: object, tz: timezone = UTC) -> OddTime:
        when = OddTime(2025, 6, 13, 10, 0, 0, 5, tzinfo=tz)
        when.text = text
        return when

    class NaiveInUtc(datetime):
        def astimezone(self, tz: Any = None) -> Any:  # a naive datetime has no "+00:00" to replace
            return datetime(2025, 6, 13, 10, 0)

    class Key(str):
        pass

    cases = [
        _fields(time=odd_time(text), details={"n": 1})
        for text in (1e-7, float("nan"), datetime(2025, 1, 1, tzinfo=UTC), {"b": 1.5}, _Mark("x"), 3)
    ]
    cases += [
        _fields(time=odd_time(1e-7, timezone(timedelta(hours=-3)))),
        _fields(time=NaiveInUtc(2025, 6, 13, 12, 0, tzinfo=timezone(timedelta(hours=2)))),
        _fields(details={Key("b"): 1, "a": _Mark("x"), "c": _Outcome.OK}),
        _fields(details={"n": 10**5000}),  # json's int-to-text limit applies as before
    ]
    for fields in cases:
        assert _outcome(encode_entry, fields) == _outcome(_ref_encode_entry, fields)
    assert b'"time":1e-07' in encode_entry(_fields(time=odd_time(1e-7)))  # orjson would write 1e-7


def test_entry_encoding_without_orjson_equals_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merkle, "_orjson", None)
    rng = random.Random(11)
    for _ in range(300):
        fields = _random_entry(rng)
        assert _outcome(encode_entry, fields) == _outcome(_ref_encode_entry, fields), fields


def test_entry_time_text_equals_strftime() -> None:
    rng = random.Random(7)
    times = [_random_time(rng) for _ in range(5000)]
    years = (1, 9, 10, 99, 100, 999, 1000, 9999)
    times += [datetime(year, 1, 1, 0, 0, 0, micro, tzinfo=UTC) for year in years for micro in (0, 1, 999999)]
    times += [datetime(1000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))]  # becomes year 999 in UTC
    for when in times:
        assert merkle._format_time(when) == _ref_time(when), when
    assert merkle._format_time(datetime(999, 5, 1, tzinfo=UTC)) == "999-05-01T00:00:00Z"  # glibc's %Y, as before
    with pytest.raises(InvalidInput, match=r"^audit times must be timezone-aware$"):
        merkle._format_time(datetime(2025, 1, 1))


def test_an_entry_key_with_a_final_newline_is_refused() -> None:
    entry = {"seq": 0, "time": "2026-01-01T00:00:00Z", "action": "a", "details": {"task_id\n": 1}}
    with pytest.raises(InvalidInput, match="lower-case ASCII identifiers"):
        encode_entry(entry)


def test_a_tree_resumed_from_its_own_frontier_goes_on_as_the_original() -> None:
    original = MerkleTree()
    for i in range(37):
        original.append_entry(b"entry %d" % i)
    resumed = MerkleTree.from_own_frontier(original.size, original.frontier)
    assert (resumed.size, resumed.root()) == (original.size, original.root())
    for i in range(37, 80):
        original.append_entry(b"entry %d" % i)
        resumed.append_entry(b"entry %d" % i)
        assert resumed.root() == original.root()  # (a shared frontier list would diverge here)
