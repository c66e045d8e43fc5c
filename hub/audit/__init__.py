"""Tamper-evident audit log: the pure core (Merkle tree, entry encoding, signed checkpoints).

``merkle`` hashes leaves into RFC 9162 roots and proofs, ``entry`` fixes the bytes of one
audit record, ``checkpoint`` signs tree heads. Nothing here touches the database or the
clock; the store and the CLI wire it to the ``records`` table.
"""
