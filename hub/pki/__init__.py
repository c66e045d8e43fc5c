"""Certificates: chain validation against trust anchors and CRLs, signing identities, helpers.

``chain`` validates a certificate chain at a given time (``TrustStore``: anchors and CRLs),
``identity`` loads an agency's or the hub's key and certificate, ``certs`` holds small
helpers (fingerprints, PEM), ``devpki`` makes DEVELOPMENT keys, CA and CRL (`hub pki init`).
Storing anchors and CRLs is the registry's job (:mod:`hub.registry.store`).
"""
