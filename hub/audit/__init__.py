"""Tamper-evident audit log: appends, the Merkle tree, signed checkpoints, queries, bundles.

The pure core: ``merkle`` hashes leaves into RFC 9162 roots and proofs, ``entry`` fixes the
bytes of one audit record, ``checkpoint`` signs tree heads (no database, no clock). The
database side, over the ``records`` and ``checkpoints`` tables of :mod:`hub.store.tables`:
``records`` builds decision records and ``log`` appends them in the caller's transaction
(every append in the hub goes through here), ``sealer`` folds entries into signed
checkpoints, ``query`` reads trails and proofs, ``verify`` re-checks the whole log, and
``bundle`` exports and verifies an offline evidence bundle.
"""
