"""Agencies: codes, names, pinned certificates, accepted document types, who serves whom."""
