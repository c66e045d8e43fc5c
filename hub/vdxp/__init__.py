"""The national axis's HTTP protocol (VDXP, the one VNPT's client SDK speaks) under ``/vdxp/``:
agencies' existing SDK clients talk to the hub by changing their endpoint URL.

``wire`` (signed headers, hash-file, envelope; pure) · ``keys`` (secrets encrypted at rest) ·
``systems`` (system ids and their agencies) · ``outgoing`` (sendEdoc, the delivery report) ·
``mailbox`` (inbox lists: done / fail / dead letters) · ``directory`` (agency lists,
membership) · ``server`` (the 13 operations, the envelope for every error).
"""
