"""Password hashing with Argon2id: only salted hashes are ever stored (DM-10, MT-15)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Interactive-login parameters (RFC 9106 second recommendation, lighter memory for a testbed host).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def is_password_hash(value: str) -> bool:
    """True when the value is an Argon2 hash string (what a store audit looks for)."""
    return value.startswith("$argon2id$") and value.count("$") >= 5
