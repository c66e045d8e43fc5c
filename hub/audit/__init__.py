"""The tamper-evident audit log: what the hub decided, in a Merkle tree it signs.

A pure core, no I/O and no clock:

``entry``       the canonical bytes of one entry and its leaf hash
``merkle``      RFC 9162 roots and proofs from leaves, the ``CompactRange`` frontier, and the
                planning of proofs from stored perfect subtrees (which nodes, how to fold)
``checkpoint``  signed tree heads (C2SP signed-note text) and their verification

and the shell that wires it to the database (``records``, ``checkpoints``, ``merkle_nodes``):

``log``         appends entries in the caller's transaction, gapless seq under a lock
``sealer``      folds new entries into the tree, stores the completed subtree hashes, signs
                a checkpoint (one sealer at a time)
``nodes``       reads proofs from O(log n) stored subtree hashes (and leaves, beyond the
                latest checkpoint)
``query``       search, a document's trail, checkpoints, inclusion / consistency proofs
``verify``      ``hub audit verify``: every leaf, checkpoint and stored node recomputed
``bundle``      evidence bundles: export (database) and offline verification

CPU-heavy work (verification, the sealer's fold, bundle building) runs in a thread so the
event loop serving workers and the API stays responsive.
"""
