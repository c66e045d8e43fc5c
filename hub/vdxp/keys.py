"""The key that keeps VDXP secrets encrypted at rest.

A VDXP secret is an HMAC key the hub must be able to use, so it cannot be hashed like a
bearer token. It is stored as AES-256-GCM(nonce, secret, AAD = system id) under a hub key
kept in a file outside the database (``HUB_VDXP_KEY_FILE``, default ``<data>/vdxp.key``,
created 0600 on first use): a copy of the database alone reveals no secret, and a ciphertext
moved to another system id does not decrypt.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.errors import UsageError

KEY_BYTES = 32
NONCE_BYTES = 12


class SecretBox:
    """Encrypts and decrypts system secrets with the hub's VDXP key."""

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise UsageError(f"the VDXP key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, path: Path, *, create: bool = False) -> "SecretBox":
        path = Path(path)
        if not path.exists():
            if not create:
                raise UsageError(f"the VDXP key file {path} does not exist; it is made by `hub vdxp add` "
                                 "(or set HUB_VDXP_KEY_FILE to where it is)")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
        key = path.read_bytes()
        if len(key) != KEY_BYTES:
            raise UsageError(f"the VDXP key file {path} must hold exactly {KEY_BYTES} bytes")
        return cls(key)

    def seal(self, system_id: str, secret: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode("utf-8"), system_id.encode("utf-8"))

    def open(self, system_id: str, sealed: bytes) -> str | None:
        """The secret, or None when it does not decrypt under this key for this system."""
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], system_id.encode("utf-8")).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError):
            return None


def new_secret() -> str:
    """Like the operator's: a base64-looking string of about 44 characters (256 random bits)."""
    return secrets.token_urlsafe(32)
