"""Tokens live only in the OS keyring: a real Secret Service backend, not a mock."""

from __future__ import annotations

import pytest

from app.connectors.errors import KeyringUnavailable
from app.connectors.tokens import KeyringTokenStore, Tokens


def test_tokens_round_trip_through_the_secret_service(secret_service):
    store = KeyringTokenStore(service="crossledger-test")
    assert KeyringTokenStore.check().endswith("SecretService.Keyring")
    tokens = Tokens("at-1", "rt-1", expires_at=123.0, client_secret="shh")
    store.save("conn-1", tokens)
    loaded = store.load("conn-1")
    assert loaded == tokens
    store.delete("conn-1")
    assert store.load("conn-1") is None
    store.delete("conn-1")  # deleting twice is fine


def test_without_a_keyring_the_user_is_told_what_to_install(monkeypatch):
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(KeyringUnavailable) as info:
            KeyringTokenStore.check()
        assert "gnome-keyring" in info.value.message
        with pytest.raises(KeyringUnavailable):
            KeyringTokenStore().save("x", Tokens("a"))
    finally:
        keyring.set_keyring(previous)
