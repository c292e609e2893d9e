"""Loading the learner's safety rules (tenant-wide trait ceilings, maximum step, exploration).

The rules are data (:class:`schemas.policy.SafetyRules`): the shipped ``safety.yaml`` or the
file named by ``RF_SAFETY_RULES_PATH``, validated once per process.

>>> rules = default_rules()
>>> r = rules.resolve("default", "companion")
>>> r.max_step, r.traits["assertiveness"].ceiling
(0.05, 0.9)
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from schemas.policy import SafetyRules

ENV_PATH = "RF_SAFETY_RULES_PATH"


def load_rules(path: str | Path | None = None) -> SafetyRules:
    """Load and validate safety rules; ``None`` loads the shipped default."""
    if path is None:
        text = resources.files("dataflows.learner").joinpath("safety.yaml").read_text()
    else:
        text = Path(path).read_text()
    return SafetyRules.model_validate(yaml.safe_load(text) or {})


@lru_cache(maxsize=1)
def default_rules() -> SafetyRules:
    """The process-wide rules (``RF_SAFETY_RULES_PATH`` if set, else the shipped file)."""
    return load_rules(os.environ.get(ENV_PATH) or None)
