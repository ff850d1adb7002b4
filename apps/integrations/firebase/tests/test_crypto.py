"""Secrets at rest: MultiFernet over FIELD_ENCRYPTION_KEYS, or a derived key in embedded mode."""

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from apps.integrations.firebase import crypto


@pytest.fixture(autouse=True)
def _fresh_keys():
    crypto.reset_keys()
    yield
    crypto.reset_keys()


def derived_key_warnings(caplog) -> list:
    return [r for r in caplog.records if "field_encryption_key_derived" in r.getMessage()]


def test_without_keys_a_local_key_is_derived_and_the_log_says_so(settings, caplog):
    caplog.set_level(logging.WARNING)
    settings.FIELD_ENCRYPTION_KEYS = []
    token = crypto.encrypt("hello")
    assert crypto.decrypt(token) == "hello" and "hello" not in token
    assert len(derived_key_warnings(caplog)) == 1
    crypto.encrypt("again")  # once per process, not per value
    assert len(derived_key_warnings(caplog)) == 1


def test_configured_keys_are_used_without_a_warning(settings, caplog):
    caplog.set_level(logging.WARNING)
    key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [key]
    token = crypto.encrypt("hello")
    assert Fernet(key.encode()).decrypt(token.encode()) == b"hello"
    assert derived_key_warnings(caplog) == []


def test_the_first_key_encrypts_and_every_key_decrypts(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    crypto.reset_keys()
    legacy = crypto.encrypt("secret")
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    crypto.reset_keys()
    assert crypto.decrypt(legacy) == "secret"
    assert not crypto.encrypted_with_newest_key(legacy)
    fresh = crypto.encrypt("secret")
    assert crypto.encrypted_with_newest_key(fresh)
    assert Fernet(new.encode()).decrypt(fresh.encode()) == b"secret"
    assert crypto.encrypted_with_newest_key(crypto.rotate(legacy))


def test_a_value_no_key_opens_is_a_clear_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    crypto.reset_keys()
    token = crypto.encrypt("hunter2-plaintext")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    crypto.reset_keys()
    with pytest.raises(crypto.DecryptionFailed) as info:
        crypto.decrypt(token)
    assert "hunter2" not in str(info.value) and token not in str(info.value)


def test_a_malformed_key_is_a_configuration_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")
