"""Agencies: codes, names, pinned certificates, accepted document types, who serves whom.

``codes`` reads agency codes (QCVN 102:2016), ``fold`` folds Vietnamese names for search,
``model`` is the immutable snapshot the checks consult, and ``store`` persists agencies and
the trust anchors and CRLs (every change bumps ``registry_version`` and is audited).
"""
