"""Merkle tree hashing of the audit log, as in Certificate Transparency (RFC 9162 section 2.1).

Every function here works on *leaf hashes* (``leaf_hash(entry_bytes)``), in log order, and
is pure: no I/O, no clock. Hashing is SHA-256 with domain separation::

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    MTH([])         = SHA-256("")                       (the empty tree)
    MTH([h])        = h
    MTH(D[n])       = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k = largest power of 2 < n

Roots and proofs are byte-for-byte those of RFC 9162 (and RFC 6962), so any CT tooling can
check them. Trees are built level by level: pair neighbours, carry an odd last node up
unchanged; that is the same left-balanced tree as the recursive definition and keeps a
million-leaf root at about half a second on one core with no recursion.

Proofs are lists of 32-byte hashes ordered from the leaf (or the old tree) upwards, exactly
as RFC 9162 2.1.3.1 PATH and 2.1.4.1 PROOF produce them. ``inclusion_proof(s)`` and
``consistency_proof`` compute them from all the leaves (O(n)); ``inclusion_ranges``,
``consistency_ranges``, ``nodes_needed`` and ``proof_from_nodes`` compute the same proofs
from the stored hashes of O(log n) perfect subtrees (``hub.audit.nodes`` reads them;
``CompactRange.append`` returns the ones each leaf completes, for the sealer to store). Verifiers return ``False`` on any
malformed input instead of raising: a proof comes from outside and is either good or not.
Bad arguments to the *producers* (index out of range, leaves of the wrong length) raise
``hub.errors.UsageError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from hub.errors import UsageError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH of the empty tree

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry (its canonical bytes)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """``leaf_hash`` of many entries at once (a tight loop: ~0.5 s per million 300-byte entries)."""
    sha, prefix = _sha256, b"\x00"
    return [sha(prefix + data).digest() for data in entries]


def _next_level(level: list[bytes]) -> list[bytes]:
    """Hash neighbours pairwise; an odd last node moves up unchanged (left-balanced tree)."""
    sha, prefix = _sha256, b"\x01"
    up = [sha(prefix + left + right).digest() for left, right in zip(level[0::2], level[1::2])]
    if len(level) & 1:
        up.append(level[-1])
    return up


def _checked(leaves: Sequence[bytes], size: int | None = None) -> list[bytes]:
    """The first ``size`` leaves as a list, refusing anything that is not a 32-byte hash."""
    if size is None:
        size = len(leaves)
    elif not _is_size(size) or size > len(leaves):
        raise UsageError(f"tree size {size!r} is not between 0 and the {len(leaves)} leaves given")
    level = list(leaves[:size]) if size != len(leaves) else list(leaves)
    # One pass over the lengths costs ~30 ms per million and catches the easy mistake of
    # passing entry bytes where leaf hashes are expected.
    if not all(type(h) is bytes and len(h) == HASH_SIZE for h in level):
        raise UsageError("leaves must be 32-byte leaf hashes (bytes), not entries")
    return level


def _is_size(n: object) -> bool:
    return type(n) is int and n >= 0


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes, in order (RFC 9162 2.1.1)."""
    level = _checked(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def _subtree(leaves: list[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a non-empty range of already checked leaves."""
    level = leaves[lo:hi]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 2.1.3.1: the audit path of one leaf, leaf end first."""
    return inclusion_proofs(leaves, [index], size)[0]


def inclusion_proofs(leaves: Sequence[bytes], indices: Sequence[int], size: int) -> list[list[bytes]]:
    """Audit paths of many leaves of the tree of ``size`` leaves, in one pass over the tree.

    Costs one tree build (O(size) hashing, O(size) memory for two levels) however many
    indices are asked; the result is in the order of ``indices`` (repeats allowed).
    """
    level = _checked(leaves, size)
    nodes = list(indices)
    for i in nodes:
        if type(i) is not int or not 0 <= i < size:
            raise UsageError(f"leaf index {i!r} is not in a tree of {size} leaves")
    proofs: list[list[bytes]] = [[] for _ in nodes]
    while len(level) > 1:
        last = len(level) - 1
        for proof, i in zip(proofs, nodes):
            sibling = i ^ 1
            if sibling <= last:  # a node without a right sibling is carried up: no proof step
                proof.append(level[sibling])
        nodes = [i >> 1 for i in nodes]
        level = _next_level(level)
    return proofs


def _valid_hash(h: object) -> bool:
    return isinstance(h, bytes) and len(h) == HASH_SIZE


def _valid_proof(proof: object) -> bool:
    return isinstance(proof, (list, tuple)) and all(_valid_hash(p) for p in proof)


# --- proofs from stored perfect subtrees ------------------------------------------------------
#
# Every hash a proof holds is MTH(D[lo:hi]) of a range the RFC 9162 recursion produces, and
# such a range is its binary decomposition into aligned perfect subtrees, folded right to
# left. With the hash of every perfect subtree stored (``hub.audit.nodes``: level 0 is the
# leaf itself), a proof for any tree size needs O(log n) stored hashes: the path's siblings
# are perfect except at most one, whose decomposition has at most log2(n) parts.

Node = tuple[int, int]  # (level, index): the perfect subtree over leaves index*2**level ... +2**level-1


def perfect_parts(lo: int, hi: int) -> list[Node]:
    """The aligned perfect subtrees whose fold is MTH(D[lo:hi]), left (largest) first."""
    if not (_is_size(lo) and _is_size(hi)) or lo >= hi:
        raise UsageError(f"leaf range {lo!r}..{hi!r} is empty")
    parts, at = [], lo
    for level in reversed(range((hi - lo).bit_length())):
        if (hi - lo) >> level & 1:
            if at & ((1 << level) - 1):
                raise UsageError(f"leaf range {lo}..{hi} is not a subtree of an RFC 9162 tree")
            parts.append((level, at >> level))
            at += 1 << level
    return parts


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) whose MTH make PATH(index, D[size]), leaf end first."""
    if not (_is_size(index) and _is_size(size)) or index >= size:
        raise UsageError(f"leaf index {index!r} is not in a tree of {size!r} leaves")
    lo, hi, top_down = 0, size, []
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if index < lo + k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo += k
    top_down.reverse()
    return top_down


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) whose MTH make PROOF(old_size, D[new_size]), old tree upwards."""
    if not (_is_size(old_size) and _is_size(new_size)) or old_size > new_size:
        raise UsageError(f"old tree size {old_size!r} is not between 0 and {new_size!r}")
    if old_size in (0, new_size):
        return []
    m, lo, hi, complete = old_size, 0, new_size, True  # SUBPROOF(m, D[lo:hi], complete)
    top_down: list[tuple[int, int]] = []
    while m != hi - lo:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if m <= k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        top_down.append((lo, hi))
    top_down.reverse()
    return top_down


def nodes_needed(ranges: Iterable[tuple[int, int]]) -> set[Node]:
    """Every perfect subtree the given ranges are folded from."""
    return {part for lo, hi in ranges for part in perfect_parts(lo, hi)}


def range_hash(lo: int, hi: int, nodes: dict[Node, bytes]) -> bytes:
    """MTH(D[lo:hi]) from the stored hashes of its perfect parts (``nodes`` must hold them)."""
    parts = [nodes[p] for p in perfect_parts(lo, hi)]
    h = parts[-1]
    for left in reversed(parts[:-1]):
        h = node_hash(left, h)
    return h


def proof_from_nodes(ranges: Sequence[tuple[int, int]], nodes: dict[Node, bytes]) -> list[bytes]:
    """A proof (``inclusion_ranges`` / ``consistency_ranges``) assembled from stored hashes."""
    return [range_hash(lo, hi, nodes) for lo, hi in ranges]


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True when ``proof`` shows ``leaf_hash`` at ``index`` of the tree ``size``/``root``.

    The algorithm of RFC 9162 2.1.3.2, step by step.
    """
    if not (_valid_hash(leaf_hash) and _valid_hash(root) and _valid_proof(proof)):
        return False
    if not (_is_size(index) and _is_size(size)) or index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_proof(leaves: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 2.1.4.1 (empty when old_size is 0 or new_size).

    SUBPROOF recurses only into one half at each step, so it runs here as a loop; the
    sibling subtrees it needs are disjoint, so the cost is O(new_size) hashing.
    """
    level = _checked(leaves, new_size)
    if not _is_size(old_size) or old_size > new_size:
        raise UsageError(f"old tree size {old_size!r} is not between 0 and {new_size}")
    if old_size in (0, new_size):
        return []
    m, lo, hi, complete = old_size, 0, new_size, True  # SUBPROOF(m, D[lo:hi], complete)
    top_down: list[bytes] = []
    while m != hi - lo:
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # largest power of 2 < hi - lo
        if m <= k:
            top_down.append(_subtree(level, lo + k, hi))
            hi = lo + k
        else:
            top_down.append(_subtree(level, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        top_down.append(_subtree(level, lo, hi))
    top_down.reverse()  # SUBPROOF emits the deepest node first
    return top_down


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """True when ``proof`` shows the tree ``old_size``/``old_root`` is a prefix of ``new_size``/``new_root``.

    RFC 9162 2.1.4.2 for 0 < old_size < new_size. Edge cases, stricter than some CT clients:
    equal sizes need an empty proof and equal roots; old_size 0 needs an empty proof and
    ``old_root`` equal to the empty-tree root.
    """
    if not (_valid_hash(old_root) and _valid_hash(new_root) and _valid_proof(proof)):
        return False
    if not (_is_size(old_size) and _is_size(new_size)) or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of 2: the old tree is a node of the new one
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class CompactRange:
    """The right frontier of a growing tree: append leaves, read the root, O(log n) state.

    It keeps one perfect-subtree hash per set bit of ``size`` (largest, leftmost first), which
    is all that appending needs. The sealer stores it next to each checkpoint
    (``to_json``) and resumes from it (``from_json``) to fold in new entries without reading
    the whole log again.
    """

    __slots__ = ("_size", "_peaks")

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()):
        if not _is_size(size):
            raise UsageError(f"compact range size {size!r} is not a non-negative integer")
        peaks = list(peaks)
        if len(peaks) != size.bit_count() or not all(_valid_hash(p) for p in peaks):
            raise UsageError(f"a compact range of size {size} holds {size.bit_count()} 32-byte hashes")
        self._size = size
        self._peaks = peaks

    @classmethod
    def from_leaves(cls, leaves: Sequence[bytes]) -> CompactRange:
        """The frontier of a whole tree, built level by level (faster than appending one by one)."""
        level = _checked(leaves)
        size, peaks, lo = len(level), [], 0
        for bit in reversed(range(size.bit_length())):
            if size >> bit & 1:
                peaks.append(_subtree(level, lo, lo + (1 << bit)))
                lo += 1 << bit
        return cls(size, peaks)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def peaks(self) -> tuple[bytes, ...]:
        """Roots of the perfect subtrees, leftmost (largest) first."""
        return tuple(self._peaks)

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add the next leaf (a 32-byte leaf hash).

        Returns the perfect subtrees this leaf completes, as ``(level, index, hash)`` with
        level >= 1 (the node over leaves ``index * 2**level`` to ``(index + 1) * 2**level - 1``),
        lowest first: what the sealer stores so that proofs need not read every leaf.
        """
        if not _valid_hash(leaf_hash):
            raise UsageError("append takes a 32-byte leaf hash")
        h, n, size, level, done = leaf_hash, self._size, self._size, 0, []
        while n & 1:  # merge with the equal-sized subtrees this leaf completes
            h = node_hash(self._peaks.pop(), h)
            n >>= 1
            level += 1
            done.append((level, size >> level, h))
        self._peaks.append(h)
        self._size += 1
        return done

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of all leaves appended so far (equal to ``root(all leaves)``)."""
        if not self._peaks:
            return EMPTY_ROOT
        h = self._peaks[-1]
        for left in reversed(self._peaks[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> CompactRange:
        return CompactRange(self._size, self._peaks)

    def to_json(self) -> str:
        """``{"size": n, "peaks": ["<hex>", ...]}``, compact, lowercase hex, leftmost first."""
        return json.dumps({"size": self._size, "peaks": [p.hex() for p in self._peaks]}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> CompactRange:
        """Inverse of ``to_json``; refuses anything but exactly that shape."""
        try:
            state = json.loads(text)
            if not isinstance(state, dict) or set(state) != {"size", "peaks"}:
                raise ValueError("keys must be exactly size and peaks")
            peaks = state["peaks"]
            if not isinstance(peaks, list) or not all(
                isinstance(p, str) and len(p) == 2 * HASH_SIZE and p == p.lower() for p in peaks
            ):
                raise ValueError("peaks must be lowercase hex SHA-256 hashes")
            return cls(state["size"], [bytes.fromhex(p) for p in peaks])
        except (ValueError, TypeError) as e:
            raise UsageError(f"not a compact range state: {e}") from e

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._peaks == other._peaks

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}…)"
