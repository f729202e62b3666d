"""API keys: generation, hashing, the bearer header, scopes.

A key is ``pvc_<key_id>_<secret>``: ``key_id`` 12 hex digits (48 random bits,
public: it names the key in listings, revocations and logs), ``secret`` 43
URL-safe base64 characters (256 random bits, :func:`secrets.token_urlsafe`).
Only the SHA-256 of the whole key is stored. A slow password hash (bcrypt,
scrypt) protects guessable human passwords; a 256-bit random key cannot be
guessed, so one SHA-256 is enough and keeps each request's check cheap.

Scopes: ``read`` (GET), ``write`` (create or change plants, weather, actuals,
forecasts; implies read), ``admin`` (keys and tenants; implies write and read).
"""

import hashlib
import re
import secrets

PREFIX = "pvc"
SCOPES = ("read", "write", "admin")
IMPLIED = {"read": {"read"}, "write": {"read", "write"}, "admin": {"read", "write", "admin"}}
DEFAULT_TENANT = "default"  # owner of plants and tasks stored without a tenant (0002_tenants_keys.sql)
KEY_PATTERN = re.compile(rf"{PREFIX}_([0-9a-f]{{12}})_[A-Za-z0-9_-]{{43}}")
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def generate_key():
    """A new random API key.

    Returns
    -------
    key_id : str
        12 hex digits, the public part.
    key : str
        ``pvc_<key_id>_<secret>``; show it once, store only :func:`hash_key`.
    """
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key):
    """SHA-256 digest (32 bytes) of a key, as stored in ``api_keys.key_sha256``."""
    return hashlib.sha256(key.encode()).digest()


def key_id_of(key):
    """The key_id of a well-formed key, None for anything else."""
    match = KEY_PATTERN.fullmatch(key) if isinstance(key, str) else None
    return match.group(1) if match else None


def bearer_key(authorization):
    """The API key of an ``Authorization: Bearer <key>`` header value.

    Parameters
    ----------
    authorization : str or None
        The header value (scheme case-insensitive, RFC 7235).

    Returns
    -------
    str or None
        The key when the header is a bearer header holding a well-formed key;
        None otherwise (missing header, other scheme, malformed key: 401).
    """
    if not isinstance(authorization, str):
        return None
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key_id_of(key) is not None else None


def parse_scopes(text):
    """Scopes of a comma-separated list (``"read,write"``), in SCOPES order.

    Raises
    ------
    ValueError
        Empty list or an unknown scope.
    """
    given = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(given - set(SCOPES))
    if unknown or not given:
        raise ValueError(f"scopes: {unknown or 'none given'} not in {list(SCOPES)}")
    return tuple(s for s in SCOPES if s in given)


def has_scope(scopes, required):
    """Whether a key holding ``scopes`` may do what needs ``required`` (admin > write > read)."""
    if required not in SCOPES:
        raise ValueError(f"required scope must be one of {list(SCOPES)}, got {required!r}")
    return any(required in IMPLIED[s] for s in scopes if s in IMPLIED)


def check_tenant(tenant_id):
    """``tenant_id`` when it is a valid tenant id (lower-case letters, digits, ``_``, ``-``; <= 63 chars).

    Raises
    ------
    ValueError
        Anything else.
    """
    if not isinstance(tenant_id, str) or not TENANT_PATTERN.fullmatch(tenant_id):
        raise ValueError(f"tenant: {tenant_id!r} must match {TENANT_PATTERN.pattern}")
    return tenant_id
