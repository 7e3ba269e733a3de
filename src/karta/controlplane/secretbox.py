"""Secrets at rest that must be read back (project env vars): AES-256-GCM with a random 96-bit
nonce per value and the value's identity as associated data, so a ciphertext moved to another
project or name fails to open.

The key comes from `KARTA_SECRETS_KEY` (32 bytes, base64). Without it — the embedded deployment —
a key is generated once into `$KARTA_HOME/secrets.key` (mode 0600).
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "secrets.key"
NONCE_BYTES = 12


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("KARTA_SECRETS_KEY must decode to 32 bytes")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<redacted>)"

    @classmethod
    def load(cls, encoded: str | None, home: Path) -> SecretBox:
        if encoded:
            try:
                return cls(base64.b64decode(encoded, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise ValueError("KARTA_SECRETS_KEY must be 32 bytes in base64") from exc
        path = home / KEY_FILE
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        return cls(path.read_bytes())

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def open(self, sealed: bytes, context: str) -> str:
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise ValueError(f"the secret for {context} does not open with this key") from exc
        return plain.decode()
