"""Create API keys: ``python -m gateway.keys create --tenant T [--admin]`` prints a new key.

Only the sha256 of the key is stored (Redis hash ``keys.api_keys()``); the key itself is
printed once.
"""

from __future__ import annotations

import argparse
import sys

import redis

from gateway.auth import Principal, hash_key, new_key
from schemas.settings import Settings, get_settings


def create_key(client: redis.Redis, settings: Settings, tenant: str, admin: bool) -> str:
    key = new_key()
    client.hset(settings.keys.api_keys(), hash_key(key), Principal(tenant, admin).record())
    return key


def revoke_key(client: redis.Redis, settings: Settings, key: str) -> bool:
    return bool(client.hdel(settings.keys.api_keys(), hash_key(key)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.keys")
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create", help="create a key and print it")
    c.add_argument("--tenant", required=True)
    c.add_argument("--admin", action="store_true", help="grant admin scope")
    r = sub.add_parser("revoke", help="revoke a key")
    r.add_argument("key")
    parser.add_argument("--redis-url", default=None, help="default: REDIS_URL / RF_REDIS_URL")
    args = parser.parse_args(argv)
    settings = get_settings()
    url = args.redis_url or settings.redis_url
    if not url:
        print("set REDIS_URL or pass --redis-url", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        if args.cmd == "create":
            print(create_key(client, settings, args.tenant, args.admin))
            return 0
        ok = revoke_key(client, settings, args.key)
        print("revoked" if ok else "unknown key")
        return 0 if ok else 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
