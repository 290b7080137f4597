"""Worker secrets: stored only as salted scrypt hashes, checked in constant time.

A stored hash is one string carrying its own parameters,
``scrypt$<n>$<r>$<p>$<salt>$<digest>`` (salt and digest in unpadded base64),
so the cost can be raised later without invalidating secrets hashed before.

Hashing costs tens of milliseconds on purpose; the repository runs it on a
thread (``hashlib.scrypt`` releases the GIL) so the event loop keeps serving
heartbeats meanwhile. Nothing here puts a secret, any part of one, or its
hash into a message, an exception's arguments or its chain: a secret that
cannot be hashed (a lone surrogate has no UTF-8 form) is refused before
hashing, naming only what is wrong, not where.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import cache

from statestore.core.validate import refused_character, type_name
from statestore.errors import InvalidInput

__all__ = ["MAX_SECRET_LENGTH", "check_secret", "check_secret_text", "hash_secret", "secret_matches"]

MAX_SECRET_LENGTH = 255
"""Characters; a bound so a caller cannot make the store hash megabytes."""

_SCHEME = "scrypt"
_N, _R, _P = 2**14, 8, 1  # the "interactive" cost: ~16 MiB and ~50 ms per hash
_SALT_BYTES = 16
_DIGEST_BYTES = 32
_MAX_MEMORY = 64 * 1024 * 1024  # above 128·r·n for every cost we write or accept


def check_secret_text(secret: object, where: str = "worker secret") -> str:
    """``secret`` if it is a string of what text may hold (no NUL, no lone
    surrogate), whatever its length; the message shows neither the secret nor
    which of its characters is wrong, nor where it is."""
    if not isinstance(secret, str):
        raise InvalidInput(f"{where}: expected a string, got {type_name(secret)}")
    if refused_character(secret) is not None:
        raise InvalidInput(f"{where}: must not contain NUL (U+0000) or a lone surrogate (U+D800 to U+DFFF)")
    return secret


def check_secret(secret: object, where: str = "worker secret") -> str:
    """``secret`` if it is a non-empty string of sane length and of what text
    may hold (the message never shows it)."""
    secret = check_secret_text(secret, where)
    if not secret:
        raise InvalidInput(f"{where}: must not be empty")
    if len(secret) > MAX_SECRET_LENGTH:
        raise InvalidInput(f"{where}: {len(secret)} characters, at most {MAX_SECRET_LENGTH} allowed")
    return secret


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _digest(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # Checked, not encoded and caught: a UnicodeEncodeError carries the whole
    # secret (in its args and ``.object``), and raising from its handler would
    # chain it as ``__context__``.
    check_secret_text(secret)
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_DIGEST_BYTES, maxmem=_MAX_MEMORY)


def hash_secret(secret: str) -> str:
    """A new salted hash of ``secret`` (a fresh random salt every call)."""
    salt = os.urandom(_SALT_BYTES)
    digest = _digest(secret, salt, _N, _R, _P)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


@cache
def _decoy_hash() -> str:
    """A hash no secret is checked against for real: verifying against it
    costs what a real check costs, so a miss does not show by its speed."""
    return hash_secret(_b64(os.urandom(_SALT_BYTES)))


def _parse(encoded: str) -> tuple[bytes, bytes, int, int, int] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or 128 * r * n > _MAX_MEMORY // 2:
        return None
    return salt, digest, n, r, p


def secret_matches(secret: str, encoded: str | None) -> bool:
    """Whether ``secret`` hashes to ``encoded``; with ``encoded`` None (no such
    worker) or malformed, the same hashing work is done and the answer is False."""
    parsed = _parse(encoded) if encoded is not None else None
    real = parsed is not None
    if parsed is None:
        parsed = _parse(_decoy_hash())
        assert parsed is not None
    salt, digest, n, r, p = parsed
    matches = hmac.compare_digest(_digest(secret, salt, n, r, p), digest)
    return matches and real
