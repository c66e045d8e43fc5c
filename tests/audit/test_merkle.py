"""RFC 9162 Merkle hashing: known answers, proofs for every shape up to 64 leaves, tampering."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from hub.audit import merkle
from hub.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from hub.errors import UsageError


# --- an independent reference: RFC 9162 2.1 transcribed literally (recursive, slow) -------

def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """Largest power of two strictly smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """MTH over *entries* (it hashes the leaves itself, as the RFC does)."""
    if not d:
        return _h(b"")
    if len(d) == 1:
        return _h(b"\x00" + d[0])
    k = _k(len(d))
    return _h(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


# --- the Certificate Transparency test vectors (certificate-transparency-go, trillian) ------

CT_ENTRIES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]
CT_ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
CT_INCLUSION = [  # (0-based leaf index, tree size, proof)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
CT_CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
CT_LEAVES = [leaf_hash(e) for e in CT_ENTRIES]

ENTRIES = [f"entry {i}".encode() * (i % 5 + 1) for i in range(130)]
LEAVES = [leaf_hash(e) for e in ENTRIES]


def _flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# --- hashing and roots ----------------------------------------------------------------------

def test_hash_primitives_use_rfc_domain_separation():
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert merkle.leaf_hashes([b"a", b"", b"c"]) == [leaf_hash(b"a"), leaf_hash(b""), leaf_hash(b"c")]
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_ct_vectors_and_the_reference(size):
    assert ref_mth(CT_ENTRIES[:size]) == CT_ROOTS[size]  # the reference itself is right
    assert root(CT_LEAVES[:size]) == CT_ROOTS[size]


def test_roots_match_the_reference_for_every_size_up_to_130():
    for n in range(131):
        assert root(LEAVES[:n]) == ref_mth(ENTRIES[:n]), n


def test_root_properties():
    a, b, c = LEAVES[:3]
    assert root([]) == EMPTY_ROOT
    assert root([a]) == a  # a one-leaf tree's root is the leaf hash
    assert root([a, b]) == node_hash(a, b)
    assert root([a, b, c]) == node_hash(node_hash(a, b), c)  # left-balanced, not padded
    assert root(tuple(LEAVES[:5])) == root(LEAVES[:5])  # any sequence
    assert root(LEAVES[:8]) == node_hash(root(LEAVES[:4]), root(LEAVES[4:8]))
    assert root(LEAVES[:6]) == node_hash(root(LEAVES[:4]), root(LEAVES[4:6]))


def test_root_refuses_entries_where_leaf_hashes_belong():
    with pytest.raises(UsageError):
        root([b"an entry, not a hash"])
    with pytest.raises(UsageError):
        root([LEAVES[0], "a" * 32])


# --- inclusion --------------------------------------------------------------------------------

@pytest.mark.parametrize(("index", "size", "proof"), CT_INCLUSION)
def test_inclusion_matches_the_ct_vectors(index, size, proof):
    expected = [bytes.fromhex(h) for h in proof]
    assert inclusion_proof(CT_LEAVES, index, size) == expected
    assert verify_inclusion(CT_LEAVES[index], index, size, expected, CT_ROOTS[size])


def _inclusion_probes(index, size, proof, root_, leaf):
    """Variations of a good inclusion proof that must all fail (after certificate-transparency-go)."""
    probes = {
        "index - 1": (leaf, index - 1, size, proof, root_),
        "index + 1": (leaf, index + 1, size, proof, root_),
        "index ^ 2": (leaf, index ^ 2, size, proof, root_),
        "size * 2": (leaf, index, size * 2, proof, root_),
        "size // 2": (leaf, index, size // 2, proof, root_),
        "wrong leaf": (leaf_hash(b"wrong"), index, size, proof, root_),
        "flipped leaf": (_flip(leaf), index, size, proof, root_),
        "empty root": (leaf, index, size, proof, EMPTY_ROOT),
        "random root": (leaf, index, size, proof, SOME_HASH),
        "trailing root": (leaf, index, size, proof + [root_], root_),
        "trailing hash": (leaf, index, size, proof + [SOME_HASH], root_),
        "preceding root": (leaf, index, size, [root_] + proof, root_),
        "trailing garbage": (leaf, index, size, proof + [b""], root_),
    }
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = _flip(wrong[i])
        probes[f"flipped proof[{i}]"] = (leaf, index, size, wrong, root_)
    if proof:
        probes["truncated"] = (leaf, index, size, proof[:-1], root_)
    if len(proof) > 1:
        probes["inserted"] = (leaf, index, size, [proof[0], SOME_HASH] + proof[1:], root_)
    return probes


@pytest.mark.parametrize("size", range(1, 65))
def test_every_inclusion_proof_verifies_and_no_variation_does(size):
    tree_root = root(LEAVES[:size])
    all_proofs = inclusion_proofs(LEAVES, range(size), size)
    for index in range(size):
        proof = inclusion_proof(LEAVES, index, size)
        assert proof == ref_path(index, ENTRIES[:size]) == all_proofs[index]
        assert verify_inclusion(LEAVES[index], index, size, proof, tree_root)
        assert verify_inclusion(LEAVES[index], index, size, tuple(proof), tree_root)
        wrongly_accepted = [
            name for name, args in _inclusion_probes(index, size, proof, tree_root, LEAVES[index]).items()
            if verify_inclusion(*args)
        ]
        assert wrongly_accepted == [], (index, size)


def test_inclusion_proofs_for_many_indices_in_one_pass():
    size = 100
    wanted = [99, 0, 37, 37, 64]
    assert inclusion_proofs(LEAVES, wanted, size) == [inclusion_proof(LEAVES, i, size) for i in wanted]
    assert inclusion_proofs(LEAVES, [], size) == []
    # the tree is the first `size` leaves even when more are given
    assert inclusion_proof(LEAVES, 3, 10) == ref_path(3, ENTRIES[:10])


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (-1, 5), (0, 131), (0, -1), (True, 5)])
def test_inclusion_proof_refuses_bad_arguments(index, size):
    with pytest.raises(UsageError):
        inclusion_proof(LEAVES, index, size)


def test_inclusion_verifier_refuses_malformed_input_without_raising():
    proof = inclusion_proof(LEAVES, 2, 7)
    tree_root = root(LEAVES[:7])
    assert verify_inclusion(LEAVES[2], 2, 7, proof, tree_root)
    assert not verify_inclusion(LEAVES[2], 2, 7, [p.hex() for p in proof], tree_root)
    assert not verify_inclusion(LEAVES[2], 2, 7, proof, tree_root.hex())
    assert not verify_inclusion(LEAVES[2][:31], 2, 7, proof, tree_root)
    assert not verify_inclusion(LEAVES[2], 2, 0, proof, tree_root)
    assert not verify_inclusion(LEAVES[2], 2.0, 7, proof, tree_root)
    assert not verify_inclusion(LEAVES[2], 2, 7, iter(proof), tree_root)
    # single-leaf tree: empty proof, root is the leaf
    assert verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    assert not verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[1])
    assert not verify_inclusion(LEAVES[0], 1, 1, [], LEAVES[0])


# --- consistency ------------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_consistency_matches_the_ct_vectors(old, new, proof):
    expected = [bytes.fromhex(h) for h in proof]
    assert consistency_proof(CT_LEAVES, old, new) == expected
    assert verify_consistency(old, new, CT_ROOTS[old], CT_ROOTS[new], expected)


def _consistency_probes(old, new, old_root, new_root, proof):
    """Variations of a good consistency proof that must all fail.

    Not "new + 1" and the like: a size whose tree has the same shape along the proof (6 and
    7 from 1, say) accepts the same proof by design of RFC 9162, reading a node as a leaf,
    which the 0x00/0x01 domain separation makes harmless.
    """
    probes = {
        "old - 1": (old - 1, new, old_root, new_root, proof),
        "old + 1": (old + 1, new, old_root, new_root, proof),
        "old ^ 2": (old ^ 2, new, old_root, new_root, proof),
        "new * 2": (old, new * 2, old_root, new_root, proof),
        "new // 2": (old, new // 2, old_root, new_root, proof),
        "tampered old root": (old, new, _flip(old_root), new_root, proof),
        "tampered new root": (old, new, old_root, _flip(new_root), proof),
        "random old root": (old, new, SOME_HASH, new_root, proof),
        "swapped roots": (old, new, new_root, old_root, proof),
        "empty proof": (old, new, old_root, new_root, []),
        "trailing old root": (old, new, old_root, new_root, proof + [old_root]),
        "trailing new root": (old, new, old_root, new_root, proof + [new_root]),
        "trailing garbage": (old, new, old_root, new_root, proof + [b""]),
        "preceding old root": (old, new, old_root, new_root, [old_root] + proof),
        "preceding new root": (old, new, old_root, new_root, [new_root] + proof),
        "preceding proof[0]": (old, new, old_root, new_root, [proof[0]] + proof),
        "truncated": (old, new, old_root, new_root, proof[:-1]),
        "first dropped": (old, new, old_root, new_root, proof[1:]),
    }
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = _flip(wrong[i], 4)
        probes[f"flipped proof[{i}]"] = (old, new, old_root, new_root, wrong)
    return probes


@pytest.mark.parametrize("new", range(1, 65))
def test_every_consistency_proof_verifies_and_no_variation_does(new):
    roots = [root(LEAVES[:n]) for n in range(new + 1)]
    for old in range(1, new + 1):
        proof = consistency_proof(LEAVES, old, new)
        assert proof == (ref_subproof(old, ENTRIES[:new], True) if old < new else [])
        assert verify_consistency(old, new, roots[old], roots[new], proof)
        if old == new:
            assert proof == []
            assert not verify_consistency(old, new, roots[old], _flip(roots[new]), proof)
            assert not verify_consistency(old, new, roots[old], roots[new], [SOME_HASH])
            continue
        wrongly_accepted = [
            name for name, args in _consistency_probes(old, new, roots[old], roots[new], proof).items()
            if verify_consistency(*args)
        ]
        assert wrongly_accepted == [], (old, new)


def test_consistency_edge_cases():
    r5 = root(LEAVES[:5])
    assert consistency_proof(LEAVES, 0, 5) == []
    assert verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 5, SOME_HASH, r5, [])  # stricter than CT: the empty root is known
    assert not verify_consistency(0, 5, EMPTY_ROOT, r5, [SOME_HASH])
    assert not verify_consistency(5, 4, r5, root(LEAVES[:4]), [])  # time travel
    assert not verify_consistency(-1, 5, EMPTY_ROOT, r5, [])
    assert not verify_consistency(2, 5, root(LEAVES[:2]), r5, "not a proof")
    for old, new in [(6, 5), (-1, 5), (1, 131)]:
        with pytest.raises(UsageError):
            consistency_proof(LEAVES, old, new)


def test_proofs_on_a_larger_tree_agree_with_each_other():
    rng = random.Random(9162)
    leaves = [leaf_hash(rng.randbytes(40)) for _ in range(5000)]
    full = root(leaves)
    indices = rng.sample(range(5000), 50)
    for i, proof in zip(indices, inclusion_proofs(leaves, indices, 5000)):
        assert verify_inclusion(leaves[i], i, 5000, proof, full)
    for old in [1, 2, 3, 1024, 1025, 2047, 4096, 4999]:
        assert verify_consistency(old, 5000, root(leaves[:old]), full, consistency_proof(leaves, old, 5000))


# --- the compact range (sealer state) ---------------------------------------------------------

def test_compact_range_matches_root_for_every_prefix_and_survives_json():
    frontier = CompactRange()
    assert frontier.size == 0 and frontier.root() == EMPTY_ROOT
    for n, leaf in enumerate(LEAVES, start=1):
        frontier.append(leaf)
        assert frontier.size == n
        assert len(frontier.peaks) == bin(n).count("1")  # O(log n) state
        assert frontier.root() == root(LEAVES[:n]), n
        assert CompactRange.from_leaves(LEAVES[:n]) == frontier
        state = frontier.to_json()
        resumed = CompactRange.from_json(state)
        assert resumed == frontier and resumed.root() == frontier.root()
        # resuming from the stored state and continuing gives the same tree as never stopping
        resumed.extend(LEAVES[n:n + 7])
        assert resumed.root() == root(LEAVES[:n + 7])


def test_compact_range_json_shape():
    frontier = CompactRange.from_leaves(LEAVES[:5])
    state = json.loads(frontier.to_json())
    assert state == {"size": 5, "peaks": [root(LEAVES[:4]).hex(), LEAVES[4].hex()]}
    assert CompactRange.from_json(frontier.to_json().encode()) == frontier
    assert frontier.copy() == frontier and frontier.copy() is not frontier


@pytest.mark.parametrize("state", [
    "", "[]", "{}", '{"size": 1, "peaks": []}',
    '{"size": 0, "peaks": ["' + "00" * 32 + '"]}',
    '{"size": 1, "peaks": ["' + "AB" * 32 + '"]}',
    '{"size": 1, "peaks": ["' + "ab" * 31 + '"]}',
    '{"size": true, "peaks": ["' + "ab" * 32 + '"]}',
    '{"size": -1, "peaks": []}',
    '{"size": 1, "peaks": ["' + "ab" * 32 + '"], "root": "x"}',
])
def test_compact_range_refuses_malformed_state(state):
    with pytest.raises(UsageError):
        CompactRange.from_json(state)


def test_compact_range_refuses_what_is_not_a_leaf_hash():
    frontier = CompactRange()
    with pytest.raises(UsageError):
        frontier.append(b"entry bytes")
    assert frontier.size == 0
