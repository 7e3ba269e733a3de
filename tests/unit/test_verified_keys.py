"""The control plane's memo of verified API keys: argon2 once per key and process, and never a
shortcut for a key that is wrong or whose stored hash changed."""

from __future__ import annotations

import pytest

from karta.controlplane import security
from karta.controlplane.security import VerifiedKeys


@pytest.fixture
def argon2_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    checks: list[str] = []
    real = security.verify_secret

    def counted(stored_hash: str | None, presented: str) -> bool:
        checks.append(presented)
        return real(stored_hash, presented)

    monkeypatch.setattr(security, "verify_secret", counted)
    return checks


def test_a_verified_key_is_checked_with_argon2_once(argon2_checks):
    keys = VerifiedKeys()
    stored = security.hash_secret("kpk_right")
    assert keys.verify(stored, "kpk_right") and keys.verify(stored, "kpk_right")
    assert argon2_checks == ["kpk_right"]


def test_a_wrong_key_is_never_remembered(argon2_checks):
    keys = VerifiedKeys()
    stored = security.hash_secret("kpk_right")
    assert not keys.verify(stored, "kpk_wrong")
    assert not keys.verify(stored, "kpk_wrong")
    assert not keys.verify(None, "kpk_right")  # no stored hash: checked against the decoy
    assert argon2_checks == ["kpk_wrong", "kpk_wrong", "kpk_right"]


def test_a_changed_hash_is_verified_in_full(argon2_checks):
    keys = VerifiedKeys()
    assert keys.verify(security.hash_secret("kpk_right"), "kpk_right")
    assert not keys.verify(security.hash_secret("kpk_other"), "kpk_right")
    assert argon2_checks == ["kpk_right", "kpk_right"]


def test_the_memo_is_bounded(argon2_checks):
    keys = VerifiedKeys(size=2)
    hashes = {name: security.hash_secret(name) for name in ("a", "b", "c")}
    for name, stored in hashes.items():
        assert keys.verify(stored, name)
    assert keys.verify(hashes["a"], "a")  # the oldest was forgotten: verified again
    assert argon2_checks == ["a", "b", "c", "a"]
