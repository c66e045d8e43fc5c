"""Agencies: codes, names, pinned certificates, accepted document types, who serves whom.

``codes`` reads agency codes (QCVN 102:2016), ``fold`` folds Vietnamese names for search,
``model`` is the immutable snapshot the checks consult, ``store`` persists agencies and the
trust anchors and CRLs (every change bumps ``registry_version``, is logged item by item in
``changes`` and audited), ``read`` loads them, and ``feed`` keeps an instance's snapshot up to
date by re-reading only what the change log names.
"""
