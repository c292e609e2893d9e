"""Container healthcheck: exit 0 when ``GET URL`` answers 2xx within the timeout.

    python /app/healthcheck.py http://127.0.0.1:8000/readyz

The slim Python image has no curl; this needs nothing but the standard library.
"""

from __future__ import annotations

import sys
import urllib.request


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8000/readyz"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 (fixed local URL)
            return 0 if 200 <= resp.status < 300 else 1
    except Exception as exc:  # HTTPError for 503, URLError while starting
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
