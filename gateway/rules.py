"""Compile rules: data that tells the BehaviorCompiler how to turn a policy into a prompt.

Rules are YAML (or JSON) validated by the pydantic models below; nothing in them is ever
evaluated as code. Placeholders such as ``{name}`` are plain substitutions
(:func:`fill`). :func:`parse_rules` reports the line at fault for invalid documents.

>>> r = default_rules()
>>> r.band_text("humor", 0.1)
'Avoid jokes; keep a straight, sincere tone.'
>>> fill("Hi {name}, {unknown}", {"name": "Ava"})
'Hi Ava, {unknown}'
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Text = Annotated[str, Field(max_length=2000)]

DEFAULT_RULES_PATH = Path(__file__).parent / "rules" / "default.yaml"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """Replace ``{key}`` by ``values[key]``; unknown placeholders stay as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraitBand(_Strict):
    """``text`` applies when ``min <= trait <= max`` (first matching band wins)."""

    min: Unit
    max: Unit
    text: Text

    @model_validator(mode="after")
    def _ordered(self) -> TraitBand:
        if self.min > self.max:
            msg = f"band min {self.min} is above max {self.max}"
            raise ValueError(msg)
        return self


class ParamMap(_Strict):
    """``param = intercept + slope * trait``, clamped to ``[min, max]``, optionally rounded."""

    param: Name
    trait: Name
    slope: float
    intercept: float = 0.0
    min: float | None = None
    max: float | None = None
    round: bool = False


class ParamRules(_Strict):
    defaults: dict[Name, float] = Field(default_factory=dict)
    maps: list[ParamMap] = Field(default_factory=list)
    integer: list[Name] = Field(default_factory=lambda: ["max_tokens"])


class ContextRule(_Strict):
    """A constraint that applies when ``context[key] <op> value``."""

    key: Name
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "in"] = "eq"
    value: str | float | bool | list[str | float | bool]
    text: Text = ""
    caps: dict[Name, float] = Field(default_factory=dict)
    floors: dict[Name, float] = Field(default_factory=dict)

    def matches(self, context: dict[str, Any]) -> bool:
        if self.key not in context:
            return False
        v = context[self.key]
        want = self.value
        if self.op == "in":
            return isinstance(want, list) and v in want
        if self.op in ("eq", "ne"):
            return (v == want) == (self.op == "eq")
        if isinstance(v, bool) or isinstance(want, (bool, list, str)):
            return False
        if not isinstance(v, (int, float)):
            return False
        return {
            "gt": v > want, "ge": v >= want, "lt": v < want, "le": v <= want
        }[self.op]


class ModelRoute(_Strict):
    trait: Name
    min: Unit = 0.0
    max: Unit = 1.0
    model: Name


class ModelRules(_Strict):
    default: Name = "default"
    by_template: dict[Name, Name] = Field(default_factory=dict)
    by_trait: list[ModelRoute] = Field(default_factory=list)


class ReplyRules(_Strict):
    """``threshold``: reply when p >= threshold (deterministic); ``sample``: reply when a
    uniform draw supplied by the caller (seeded per decision) is below p."""

    mode: Literal["threshold", "sample"] = "threshold"
    threshold: Unit = 0.5
    default_probability: Unit = 1.0


class AdaptationRules(_Strict):
    """In-context adaptation: a bounded summary of how actions fared in this bucket."""

    enabled: bool = True
    header: Text = "What worked with people here before:"
    line: Text = "{bucket}: {action} {verdict} {n} of {count}"
    welcomed: Text = "welcomed"
    ignored: Text = "ignored"
    min_count: Annotated[int, Field(ge=1)] = 2
    max_lines: Annotated[int, Field(ge=0, le=20)] = 3
    max_chars: Annotated[int, Field(ge=0, le=4000)] = 300


class FeedbackRules(_Strict):
    intensity: Literal["off", "low", "normal", "high"] = "normal"
    meaningful_session_seconds: Annotated[float, Field(ge=0)] = 120.0
    meaningful_agent_messages: Annotated[int, Field(ge=0)] = 3
    rating_every_hours: Annotated[float, Field(gt=0)] = 24.0
    thumbs_every_messages: Annotated[int, Field(ge=1)] = 5
    check_in_after_days: Annotated[float, Field(gt=0)] = 7.0


class CompileRules(_Strict):
    persona: Text = "You are {name}. {description}"
    traits: dict[Name, list[TraitBand]] = Field(default_factory=dict)
    params: ParamRules = Field(default_factory=ParamRules)
    actions: dict[Name, Text] = Field(default_factory=dict)
    default_action: Text = "Next, do this: {action}."
    contexts: list[ContextRule] = Field(default_factory=list)
    models: ModelRules = Field(default_factory=ModelRules)
    reply: ReplyRules = Field(default_factory=ReplyRules)
    adaptation: AdaptationRules = Field(default_factory=AdaptationRules)
    feedback: FeedbackRules = Field(default_factory=FeedbackRules)

    def band_text(self, trait: str, value: float) -> str | None:
        for band in self.traits.get(trait, ()):
            if band.min <= value <= band.max:
                return band.text
        return None


class RulesError(ValueError):
    """Invalid compile rules; ``errors`` are dicts with loc, msg and (when known) line."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0] if errors else {}
        where = f" (line {first['line']})" if first.get("line") else ""
        super().__init__(f"invalid compile rules: {first.get('msg', '?')}{where}")


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The deepest YAML node along ``loc`` (mapping keys and sequence indexes)."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if str(k.value) == str(part):
                    nxt = v
                    break
            if nxt is None:
                # an unknown key: point at the key itself
                for k, _ in node.value:
                    if str(k.value) == str(part):
                        return k
                return node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def parse_rules(text: str | bytes) -> CompileRules:
    """Parse YAML or JSON rules text; raise :class:`RulesError` naming the line at fault.

    >>> parse_rules("persona: 'Hi {name}'").persona
    'Hi {name}'
    >>> try:
    ...     parse_rules("persona: ok\\ntraits:\\n  humor:\\n    - {min: 0.9, max: 2, text: x}\\n")
    ... except RulesError as e:
    ...     print(e.errors[0]["line"], e.errors[0]["loc"])
    4 ['traits', 'humor', 0, 'max']
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RulesError([{"loc": [], "msg": f"YAML syntax: {exc.problem}", "line": line}]) from exc
    except yaml.YAMLError as exc:
        raise RulesError([{"loc": [], "msg": f"YAML: {exc}", "line": None}]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError([{"loc": [], "msg": "rules must be a mapping", "line": 1}])
    try:
        return CompileRules.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            node = _node_at(root, loc)
            line = node.start_mark.line + 1 if node is not None else None
            errors.append({"loc": list(loc), "msg": err["msg"], "line": line})
        raise RulesError(errors) from exc


def rules_to_json(rules: CompileRules) -> str:
    return json.dumps(rules.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)


@lru_cache(maxsize=1)
def default_rules() -> CompileRules:
    """The shipped rules (``gateway/rules/default.yaml``), version 0."""
    return parse_rules(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
