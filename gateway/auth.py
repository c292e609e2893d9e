"""API keys: sha256 hashes at rest in the Redis hash ``keys.api_keys()``.

>>> k = new_key()
>>> len(k) > 30 and hash_key(k) == hash_key(k) and hash_key(k) != k
True
>>> Principal.from_record('{"tenant": "acme", "admin": true}').admin
True
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

KEY_PREFIX = "rfk_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    admin: bool = False

    @classmethod
    def from_record(cls, raw: str | bytes) -> Principal:
        d = json.loads(raw)
        return cls(tenant=str(d["tenant"]), admin=bool(d.get("admin", False)))

    def record(self) -> str:
        return json.dumps({"tenant": self.tenant, "admin": self.admin,
                           "created": datetime.now(UTC).isoformat()})
