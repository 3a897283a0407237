"""API key secrets: generation and the HMAC that is all we keep of them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits
# Longer than any key we issue, short enough that a 10 KB header is refused before hashing.
MAX_KEY_LENGTH = 128


def generate_secret(environment: str) -> str:
    """`hx_<env>_<32 random base36 chars>` (~165 bits)."""
    return f"hx_{environment}_" + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def hash_secret(secret: str, pepper: bytes) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def is_well_formed(secret: str) -> bool:
    return 8 <= len(secret) <= MAX_KEY_LENGTH and secret.isascii() and secret.isprintable() and " " not in secret


def display_prefix(secret: str) -> str:
    return secret[:12]
