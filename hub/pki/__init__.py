"""Trust anchors, chain validation, CRLs, and development PKI generation."""
