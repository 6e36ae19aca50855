"""Merkle tree hashing for the audit log, exactly as Certificate Transparency does it (RFC 9162 §2.1).

Pure functions, no storage: the audit use case and the storage layer build on these.

* ``leaf_hash`` / ``node_hash``: the domain-separated hashes of RFC 9162 §2.1.1 (the 0x00 / 0x01
  prefixes stop a leaf from being passed off as an interior node, the second-preimage attack).
* ``root``: MTH(D[n]) of RFC 9162 §2.1.1, including the empty tree SHA-256("").
* ``MerkleTree``: a compact range (the roots of the perfect subtrees, one per set bit of the size),
  so appending is amortised O(1) hashes, memory is O(log n) and the root is available at every size.
  Verifying a log of 10M entries therefore streams in constant memory.
* ``inclusion_proof`` / ``verify_inclusion``: RFC 9162 §2.1.3.1 and §2.1.3.2.
* ``consistency_proof`` / ``verify_consistency``: RFC 9162 §2.1.4.1 and §2.1.4.2.
* ``encode_entry`` / ``decode_entry``: the canonical bytes of one audit entry (the Merkle leaf input).

Proof generation takes the leaf hashes as a random-access sequence and costs O(n) hashes; that is
fine for the core and for tests. A storage layer that serves many proofs over a big log should keep
interior nodes (or subtree roots) instead of recomputing them.

Proof *verification* functions return ``bool`` and never raise on a bad proof, because a bad proof is
an answer, not a programming error; callers turn ``False`` into ``AuditTampered`` where it matters.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from labelvault.errors import InvalidInput

try:  # orjson parses entries during verification and encodes them when its bytes equal json's (see below)
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "RECOMMENDED_FIELDS",
    "REQUIRED_FIELDS",
    "MerkleTree",
    "ciphertext_digest",
    "consistency_proof",
    "decode_entry",
    "encode_entry",
    "entry_seq",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"  # RFC 9162 §2.1.1: MTH({d(0)}) = HASH(0x00 || d(0))
_NODE_PREFIX = b"\x01"  # RFC 9162 §2.1.1: HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
_sha256 = hashlib.sha256

# RFC 9162 §2.1.1: "The hash of an empty list is the hash of an empty string", MTH({}) = SHA-256().
EMPTY_ROOT: bytes = _sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry), RFC 9162 §2.1.1."""
    return _sha256(_LEAF_PREFIX + entry).digest()  # no bytes(): bytes(5) would be 5 zero bytes


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right), RFC 9162 §2.1.1."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != HASH_SIZE:
        raise InvalidInput(f"{what} must be {HASH_SIZE} bytes", details={"field": what})
    return bytes(value)


def _largest_power_of_two_below(n: int) -> int:
    """k of RFC 9162 §2.1.1: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree kept as a compact range (the "frontier").

    ``_frontier[i]`` is the root of a perfect subtree; their sizes are the set bits of ``size``,
    largest (leftmost) first. Appending merges equal-sized subtrees like a binary counter carry,
    which is exactly how MTH splits at the largest power of two (RFC 9162 §2.1.1).
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> MerkleTree:
        """Resume a tree from a persisted ``(size, frontier)`` pair, e.g. a stored log head row."""
        if size < 0 or len(frontier) != size.bit_count():
            raise InvalidInput(
                "a frontier needs one hash per set bit of the size",
                details={"size": size, "hashes": len(frontier)},
            )
        tree = cls()
        tree._size = size
        tree._frontier = [_check_hash(h, "frontier hash") for h in frontier]
        return tree

    @classmethod
    def from_own_frontier(cls, size: int, frontier: tuple[bytes, ...]) -> MerkleTree:
        """Resume from ``(size, frontier)`` as a tree of this process left them (``size`` and the
        ``frontier`` property), unchecked: the audit log resumes so at every append of a write
        batch, where checking each hash again cost more than the append's own hashing."""
        tree = cls()
        tree._size = size
        tree._frontier = list(frontier)
        return tree

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> MerkleTree:
        tree = cls()
        tree.extend(leaf_hashes)
        return tree

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, largest first: O(log n) state to persist and resume."""
        return tuple(self._frontier)

    def copy(self) -> MerkleTree:
        return MerkleTree.from_frontier(self._size, self._frontier)

    def append(self, leaf: bytes) -> None:
        """Append one *leaf hash* (not the entry: use ``append_entry`` for raw entry bytes)."""
        if len(leaf) != HASH_SIZE:
            raise InvalidInput(f"a leaf hash must be {HASH_SIZE} bytes", details={"field": "leaf_hash"})
        h = bytes(leaf)
        n = self._size
        frontier = self._frontier
        # Each trailing 1 bit of the old size is a subtree of the same size as the one we carry.
        while n & 1:
            h = _sha256(_NODE_PREFIX + frontier.pop() + h).digest()
            n >>= 1
        frontier.append(h)
        self._size += 1

    def append_entry(self, entry: bytes) -> bytes:
        """Hash raw entry bytes as a leaf, append it, and return the leaf hash."""
        h = leaf_hash(entry)
        self.append(h)
        return h

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of all leaves so far: fold the frontier from the smallest subtree leftwards."""
        frontier = self._frontier
        if not frontier:
            return EMPTY_ROOT
        r = frontier[-1]
        for h in reversed(frontier[:-1]):
            r = _sha256(_NODE_PREFIX + h + r).digest()
        return r

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"MerkleTree(size={self._size}, root={self.root().hex()[:16]}...)"


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes, RFC 9162 §2.1.1 (computed incrementally, O(log n) memory)."""
    return MerkleTree.from_leaf_hashes(leaf_hashes).root()


def _subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) without slicing (slices of a big list would copy)."""
    tree = MerkleTree()
    for i in range(lo, hi):
        tree.append(leaves[i])
    return tree.root()


def _check_size(size: int, available: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or size > available:
        raise InvalidInput(
            f"{what} must be between 0 and {available}", details={"field": what, "value": size}
        )


# --- inclusion: RFC 9162 §2.1.3 ------------------------------------------------------------------


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1: the audit path of leaf ``index`` in the tree of the first
    ``size`` leaves (all of them when ``size`` is None). Ordered from the leaf towards the root."""
    n = len(leaf_hashes) if size is None else size
    _check_size(n, len(leaf_hashes), "size")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise InvalidInput("leaf index must be below the tree size", details={"index": index, "size": n})
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    # Iterative form of the recursion: descend towards the leaf, collecting the sibling subtree
    # roots; the recursion appends them on the way back up, so reverse at the end.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m < k:
            path.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` show leaf hash ``leaf`` at ``index`` in the tree of ``size``
    leaves whose root is ``root_hash``? Steps are numbered as in the RFC."""
    if index < 0 or size < 0 or len(leaf) != HASH_SIZE or len(root_hash) != HASH_SIZE:
        return False
    # 1. leaf_index >= tree_size fails.
    if index >= size:
        return False
    # 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    fn, sn = index, size - 1
    r = bytes(leaf)
    # 4. For each p in the inclusion path:
    for p in proof:
        if len(p) != HASH_SIZE:
            return False
        # 4a. sn == 0: the path is longer than the tree is deep.
        if sn == 0:
            return False
        # 4b. p is a left sibling when fn is a right child, or fn is the last node on its level.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # 4b.ii: skip levels where fn is a lone rightmost node (no sibling in this tree).
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # 4c.
        fn >>= 1
        sn >>= 1
    # 5. The whole path was used (sn == 0) and it leads to the root.
    return sn == 0 and r == root_hash


# --- consistency: RFC 9162 §2.1.4 ----------------------------------------------------------------


def consistency_proof(
    leaf_hashes: Sequence[bytes], old_size: int, new_size: int | None = None
) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1.

    Empty when ``old_size`` is 0 or equals ``new_size``: there is nothing to prove (every tree extends
    the empty one, and equal sizes are compared root to root)."""
    n = len(leaf_hashes) if new_size is None else new_size
    _check_size(n, len(leaf_hashes), "new_size")
    _check_size(old_size, n, "old_size")
    if old_size == 0 or old_size == n:
        return []
    return _subproof(leaf_hashes, old_size, 0, n, True)


def _subproof(leaves: Sequence[bytes], m: int, lo: int, hi: int, b: bool) -> list[bytes]:
    """SUBPROOF(m, D[lo:hi], b) of RFC 9162 §2.1.4.1; ``b`` says whether D[lo:lo+m] is the old tree
    itself (whose root the verifier already has) or a subtree whose root must be supplied."""
    n = hi - lo
    if m == n:
        return [] if b else [_subtree_root(leaves, lo, hi)]
    k = _largest_power_of_two_below(n)
    if m <= k:
        return [*_subproof(leaves, m, lo, lo + k, b), _subtree_root(leaves, lo + k, hi)]
    return [*_subproof(leaves, m - k, lo + k, hi, False), _subtree_root(leaves, lo, lo + k)]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (``old_size``, ``old_root``) a prefix of (``new_size``,
    ``new_root``)? Steps are numbered as in the RFC; sizes 0 and equal sizes are handled first
    because the RFC algorithm is only defined for 0 < first < second."""
    if old_size < 0 or new_size < old_size or len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    # 1. An empty path proves nothing.
    if not proof or any(len(c) != HASH_SIZE for c in proof):
        return False
    path = list(proof)
    # 2. If first is a power of two, the old root is itself a node of the new tree: prepend it.
    if old_size & (old_size - 1) == 0:
        path.insert(0, bytes(old_root))
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4. Skip the levels where the old tree's last node is a right child of a complete subtree.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr rebuilds the old root, sr the new one.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        # 6a.
        if sn == 0:
            return False
        # 6b.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:  # 6b.ii
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        # 6c.
        fn >>= 1
        sn >>= 1
    # 7.
    return sn == 0 and fr == old_root and sr == new_root


# --- canonical entry encoding ----------------------------------------------------------------------

# Every entry names its position and what happened; the rest is recommended, so that a security
# officer can answer "who saw which data". Hashes of ciphertexts go in, plaintext never does: after
# a client's keys are shredded the log must stay verifiable and reveal nothing (BRIEF, Merkle log).
REQUIRED_FIELDS: tuple[str, ...] = ("seq", "time", "action")
RECOMMENDED_FIELDS: tuple[str, ...] = (
    "seq",  # leaf index in the log, 0-based, contiguous
    "time",  # RFC 3339 UTC
    "actor",  # user id / token id / "system"; None when unauthenticated
    "action",  # e.g. "task.shown", "export", "key.rotate", "role.change"
    "client_id",
    "object_kind",
    "object_id",
    "outcome",  # "ok" / "denied" / "error"
    "ciphertext_sha256",  # ciphertext_digest() of any ciphertext involved
)

_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # matched whole (fullmatch: "$" would let a final "\n" in)
_MAX_DEPTH = 8


def ciphertext_digest(ciphertext: bytes) -> str:
    """Hex SHA-256 of a ciphertext, for the ``ciphertext_sha256`` field (never hash plaintext)."""
    return _sha256(bytes(ciphertext)).hexdigest()


def _format_time(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput("audit times must be timezone-aware", details={"field": "time"})
    # One spelling per instant: UTC, "Z", microseconds only when present.
    utc = value.astimezone(UTC)
    if type(utc) is datetime and utc.tzinfo is UTC and utc.year >= 1000:
        # Same text as the strftime below, a third of the cost. Not for subclasses (their isoformat
        # may differ, e.g. nanoseconds) nor years < 1000 (glibc's %Y does not zero-pad them).
        return utc.isoformat()[:-6] + "Z"  # drop "+00:00"
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return utc.strftime(fmt)


# Types that are their own canonical form (exact types: an int subclass such as IntEnum is not).
# Checked first, by identity: entries are written twice per answer, and the isinstance chain
# below was most of the encoding's cost.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
# Keys already checked against _KEY_RE: entries use a small vocabulary (bounded, since details may
# carry callers' keys).
_CHECKED_KEYS: set[str] = set()
_CHECKED_KEYS_MAX = 4096


def _canonical(value: Any, path: str, depth: int, odd: list[str]) -> Any:
    """``value`` as exact str, int, bool, None, list or dict; ``odd`` collects the paths where a
    datetime subclass's own formatting returned something else (only json may encode those)."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    if depth > _MAX_DEPTH:
        raise InvalidInput("audit entry nests too deeply", details={"field": path})
    # Exact datetime and dict (the usual "time" and "details") skip the isinstance chain below,
    # whose earlier branches they could not take.
    if kind is datetime:
        return _format_time(value)
    if kind is not dict:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return str.__str__(value)  # a str subclass's text as an exact str (what json prints)
        if isinstance(value, int):
            return int(value)  # int subclasses (IntEnum) -> plain int, so json prints a number
        if isinstance(value, datetime):
            text = _format_time(value)
            if type(text) is not str:
                odd.append(path)
            return text
        if isinstance(value, float):
            # Float text differs between languages; an auditor re-deriving leaf hashes elsewhere must
            # get the same bytes, so floats are refused (send integers or strings).
            raise InvalidInput("audit entry values may not be floats", details={"field": path})
        if isinstance(value, bytes | bytearray | memoryview):
            raise InvalidInput(
                "audit entry values may not be bytes: store ciphertext_digest(...) hex, never plaintext",
                details={"field": path},
            )
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k not in _CHECKED_KEYS:
                if not isinstance(k, str) or not _KEY_RE.fullmatch(k):
                    raise InvalidInput(
                        "audit entry keys must be lower-case ASCII identifiers", details={"field": f"{path}.{k}"}
                    )
                if len(_CHECKED_KEYS) < _CHECKED_KEYS_MAX:
                    _CHECKED_KEYS.add(k)
            out[k] = v if type(v) in _PLAIN_TYPES else _canonical(v, f"{path}.{k}", depth + 1, odd)
        return out
    if isinstance(value, list | tuple):
        return [_canonical(v, f"{path}[{i}]", depth + 1, odd) for i, v in enumerate(value)]
    raise InvalidInput(
        f"audit entry value of type {type(value).__name__} is not allowed", details={"field": path}
    )


def encode_entry(fields: Mapping[str, object]) -> bytes:
    """Canonical bytes of one audit entry: sorted-key compact JSON in UTF-8.

    Deterministic for a given mapping: keys sorted (ASCII identifiers only, so every language sorts
    them the same), no whitespace, no floats, datetimes as RFC 3339 UTC. These bytes are the Merkle
    leaf input (``leaf_hash(encode_entry(...))``); the log stores them verbatim.
    """
    if not isinstance(fields, Mapping):
        raise InvalidInput("an audit entry is a mapping of fields")
    missing = [f for f in REQUIRED_FIELDS if f not in fields]
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
    odd: list[str] = []
    doc = _canonical(fields, "entry", 0, odd)
    if _orjson is not None and not odd:
        # The doc holds only str, int, bool, None, list and dict with checked ASCII keys, for
        # which orjson writes json's bytes: same escapes, UTF-8, code-point key order
        # (tests/unit/test_merkle.py compares them). Whatever orjson
        # refuses (ints beyond 64 bits, lone surrogates, str-subclass keys) goes the json way below,
        # which encodes or raises as before.
        try:
            return _orjson.dumps(doc, option=_orjson.OPT_SORT_KEYS)
        except Exception:
            pass
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be UTF-8
        raise InvalidInput("audit entry text is not valid Unicode") from exc


def decode_entry(data: bytes) -> dict[str, Any]:
    """Parse entry bytes back into fields; raises ``InvalidInput`` if they are not a JSON object."""
    try:
        doc = _orjson.loads(data) if _orjson is not None else json.loads(data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("audit entry is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("audit entry is not a JSON object")
    return doc


def entry_seq(data: bytes) -> int | None:
    """The ``seq`` an entry claims for itself, or None if the bytes are not a well-formed entry."""
    try:
        seq = decode_entry(data).get("seq")
    except InvalidInput:
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return None
    return seq
