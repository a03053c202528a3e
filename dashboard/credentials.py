"""The dashboard's secrets on disk: the password, the API tokens and the session key.

Guarantees: every file is created with mode 0600 in the state directory and written
atomically; the password is stored only as a werkzeug hash (scrypt); API tokens are random
(256 bits) and stored only as their SHA-256 (a fast hash is right for random tokens, a slow one
for passwords); a token or a generated password is returned once, to be shown once, and can
never be read back.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

AUTH_FILE = "dashboard_auth.json"
SECRET_FILE = "dashboard_secret"
#: Shortest password :func:`set_password` accepts.
MIN_PASSWORD = 8


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".auth-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class Credentials:
    """The password hash and token hashes kept in ``<state_dir>/dashboard_auth.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / AUTH_FILE

    def _load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, Any]) -> None:
        _write_private(self.path, json.dumps(data, indent=1).encode())

    def has_password(self) -> bool:
        """True once a password was set."""
        return bool(self._load().get("password"))

    def set_password(self, password: str) -> None:
        """Store ``password`` hashed; ValueError when shorter than :data:`MIN_PASSWORD`."""
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        data = self._load()
        data["password"] = generate_password_hash(password)
        self._save(data)

    def generate_password(self) -> str:
        """Set a new random password and return it (to be printed once)."""
        password = secrets.token_urlsafe(12)
        self.set_password(password)
        return password

    def check_password(self, password: str) -> bool:
        """True when ``password`` is the stored one (False when none is set)."""
        stored = self._load().get("password")
        return bool(stored) and check_password_hash(stored, password)

    def password_epoch(self) -> str:
        """A short digest of the stored hash: sessions carry it, so changing the password
        ends every session opened with the old one."""
        stored = self._load().get("password") or ""
        return hashlib.sha256(stored.encode()).hexdigest()[:16]

    def new_token(self) -> str:
        """Create an API token and return it (to be shown once); only its hash is kept."""
        token = secrets.token_urlsafe(32)
        data = self._load()
        data.setdefault("tokens", []).append(hashlib.sha256(token.encode()).hexdigest())
        self._save(data)
        return token

    def check_token(self, token: str) -> bool:
        """True when ``token`` is one of the stored API tokens (constant-time comparison)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        return any(hmac.compare_digest(digest, known) for known in self._load().get("tokens", []))


def secret_key(path: Path) -> bytes:
    """The session signing key in ``path``, created (32 random bytes, mode 0600) if missing."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) < 32:
        key = secrets.token_bytes(32)
        _write_private(path, key)
    return key
