"""Secrets at rest that must be read back (project env vars, provider keys): AES-256-GCM with a
random 96-bit nonce per value and the value's identity as associated data, so a ciphertext moved
to another row (another project, name, organization or provider) fails to open.

The master keys form a ring, each with an id: the newest seals, every one opens, and each row
stores the id of the key that sealed it so `karta controlplane rotate-key` can re-seal whatever
an older key still holds. Keys come from `KARTA_SECRETS_KEYS` (`id:base64,id:base64…`, newest
first, 32 bytes each), or `KARTA_SECRETS_KEY` (one key, id `default`). Without either — the
embedded deployment — a key is generated once into `$KARTA_HOME/secrets.key` (mode 0600, id
`local`).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "secrets.key"
NONCE_BYTES = 12
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class SecretUnreadable(ValueError):
    """A sealed value no key of the ring opens for this row (moved, tampered with, or sealed by
    a key that was removed). The message names the row, never the value."""


@dataclass(frozen=True)
class Sealed:
    key_id: str  # the master key that sealed it
    blob: bytes  # nonce || ciphertext || tag


class SecretBox:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        """`keys` newest first: the first seals."""
        if not keys:
            raise ValueError("a secret box needs at least one key")
        ids = [key_id for key_id, _ in keys]
        if len(set(ids)) != len(ids):
            raise ValueError("secrets key ids must be unique")
        for key_id, key in keys:
            if not KEY_ID.match(key_id):
                raise ValueError(f"secrets key id {key_id!r}: use 1-32 letters, digits, _ . -")
            if len(key) != 32:
                raise ValueError(f"secrets key {key_id!r} must decode to 32 bytes")
        self._ring = [(key_id, AESGCM(key)) for key_id, key in keys]

    def __repr__(self) -> str:
        return f"SecretBox(keys={self.key_ids!r})"

    @property
    def key_ids(self) -> list[str]:
        return [key_id for key_id, _ in self._ring]

    @property
    def current(self) -> str:
        """The id of the key that seals."""
        return self._ring[0][0]

    @classmethod
    def load(cls, encoded: str | None, home: Path, ring: str | None = None) -> SecretBox:
        """From `KARTA_SECRETS_KEYS` (`ring`), else `KARTA_SECRETS_KEY` (`encoded`), else the
        key file under `home` (created on first use)."""
        if ring:
            keys = []
            for entry in ring.split(","):
                key_id, sep, value = entry.strip().partition(":")
                if not sep:
                    raise ValueError("KARTA_SECRETS_KEYS entries look like id:base64")
                keys.append((key_id, _decode(value, f"KARTA_SECRETS_KEYS key {key_id!r}")))
            return cls(keys)
        if encoded:
            return cls([("default", _decode(encoded, "KARTA_SECRETS_KEY"))])
        path = home / KEY_FILE
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        return cls([("local", path.read_bytes())])

    def seal(self, plaintext: str, context: str) -> Sealed:
        key_id, aead = self._ring[0]
        nonce = secrets.token_bytes(NONCE_BYTES)
        return Sealed(key_id, nonce + aead.encrypt(nonce, plaintext.encode(), context.encode()))

    def open(self, blob: bytes, context: str, key_id: str | None = None) -> str:
        """The plaintext, with the key named by `key_id` (a row sealed before rows recorded
        their key tries each in turn)."""
        candidates = [aead for kid, aead in self._ring if key_id is None or kid == key_id]
        for aead in candidates:
            try:
                plain = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
            except InvalidTag:
                continue
            return plain.decode()
        raise SecretUnreadable(f"the secret for {context} does not open with the secrets keys")

    def reseal(self, blob: bytes, context: str, key_id: str | None) -> Sealed | None:
        """The value sealed with the newest key, or None when it already is."""
        if key_id == self.current:
            return None
        return self.seal(self.open(blob, context, key_id), context)


# The associated data of each kind of secret: what binds a ciphertext to its row.


def env_context(organization_id: int, project_id: int, name: str) -> str:
    return f"env:{organization_id}:{project_id}:{name}"


def provider_key_context(organization_id: int, project_id: int | None, provider: str) -> str:
    return f"byok:{organization_id}:{project_id or 0}:{provider}"


def _decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{what} must be 32 bytes in base64") from exc
