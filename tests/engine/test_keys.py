"""engine.keys: key format, bearer header parsing, scopes (pure functions)."""

import pytest

from engine import keys


def test_generated_keys_are_unique_and_well_formed():
    generated = [keys.generate_key() for _ in range(200)]
    assert len({k for _, k in generated}) == len({i for i, _ in generated}) == 200
    assert all(keys.key_id_of(k) == i for i, k in generated)
    assert all(len(keys.hash_key(k)) == 32 for _, k in generated[:3])


def test_the_hash_is_sha256_of_the_whole_key():
    import hashlib
    _, key = keys.generate_key()
    assert keys.hash_key(key) == hashlib.sha256(key.encode()).digest() != keys.hash_key(key[:-1])


@pytest.mark.parametrize("header, ok", [
    ("Bearer {key}", True), ("bearer {key}", True), ("  Bearer   {key} ", True),
    ("{key}", False), ("Basic {key}", False), ("Bearer", False), ("Bearer {key}x", False),
    ("Bearer {key} extra", False), ("Bearer pvc_xyz_{key}", False), (None, False),
])
def test_bearer_header(header, ok):
    _, key = keys.generate_key()
    value = None if header is None else header.format(key=key)
    assert keys.bearer_key(value) == (key if ok else None)


@pytest.mark.parametrize("scopes, required, allowed", [
    (("read",), "read", True), (("read",), "write", False), (("read",), "admin", False),
    (("write",), "read", True), (("write",), "write", True), (("write",), "admin", False),
    (("admin",), "read", True), (("admin",), "write", True), (("admin",), "admin", True),
    ((), "read", False),
])
def test_scopes_imply_weaker_ones(scopes, required, allowed):
    assert keys.has_scope(scopes, required) is allowed


def test_parse_scopes_orders_and_refuses_unknown():
    assert keys.parse_scopes("admin, read") == ("read", "admin")
    for bad in ("", "read,superuser", " , "):
        with pytest.raises(ValueError, match="scopes"):
            keys.parse_scopes(bad)
