"""Export JSON Schema for every event and the policy document (``make schemas``).

Kafka producers in other languages validate against these files; the dataflow validates the
same models with pydantic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.agent import AgentSpec
from schemas.events import EVENT_ADAPTER, EVENT_TYPES
from schemas.policy import PolicyDocument


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema.

    >>> s = schemas()
    >>> sorted(s)[:3]
    ['AgentSpec.json', 'AgentUpserted.json', 'DeadLetter.json']
    >>> s["FeedbackGiven.json"]["properties"]["kind"]["enum"][:2]
    ['thumbs', 'rating']
    """
    out = {f"{t.__name__}.json": t.model_json_schema() for t in EVENT_TYPES}
    out["Event.json"] = EVENT_ADAPTER.json_schema()
    out["PolicyDocument.json"] = PolicyDocument.model_json_schema()
    out["AgentSpec.json"] = AgentSpec.model_json_schema()
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "schemas/json")
    target.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (target / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(schemas())} JSON Schemas to {target}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
