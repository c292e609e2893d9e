"""Redis key layout.

Every per-agent key carries the hash tag ``{tenant:agent_id}`` so that all keys of one agent
live on one Redis Cluster slot and can be written in one pipeline or script.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.priors import prior_key


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one configurable prefix.

    >>> k = Keys("rf")
    >>> k.policy("acme", "a1")
    'rf:{acme:a1}:policy'
    >>> k.projection("acme", "a1", "24h")
    'rf:{acme:a1}:proj:24h'
    >>> k.relationship("acme", "a1", "u9")
    'rf:{acme:a1}:rel:u9'
    """

    prefix: str = "rf"

    def agent_base(self, tenant: str, agent_id: str) -> str:
        return f"{self.prefix}:{{{tenant}:{agent_id}}}"

    def agent(self, tenant: str, agent_id: str) -> str:
        """Agent spec (JSON) as registered through the gateway."""
        return f"{self.agent_base(tenant, agent_id)}:agent"

    def policy(self, tenant: str, agent_id: str) -> str:
        """Current policy document (JSON)."""
        return f"{self.agent_base(tenant, agent_id)}:policy"

    def policy_history(self, tenant: str, agent_id: str) -> str:
        """Hash of version -> policy document (JSON)."""
        return f"{self.agent_base(tenant, agent_id)}:policy:history"

    def summary(self, tenant: str, agent_id: str) -> str:
        """Hash with the projection summary and the ``seq`` write guard."""
        return f"{self.agent_base(tenant, agent_id)}:proj:summary"

    def projection(self, tenant: str, agent_id: str, window: str) -> str:
        """Windowed aggregate (JSON) for ``window`` in 1h, 24h, 7d."""
        return f"{self.agent_base(tenant, agent_id)}:proj:{window}"

    def history(self, tenant: str, agent_id: str) -> str:
        """Behaviour history (JSON)."""
        return f"{self.agent_base(tenant, agent_id)}:hist"

    def relationship(self, tenant: str, agent_id: str, user_id: str) -> str:
        """Relationship of the agent with one user (JSON)."""
        return f"{self.agent_base(tenant, agent_id)}:rel:{user_id}"

    def agents_index(self, tenant: str) -> str:
        """Set of agent ids registered for a tenant."""
        return f"{self.prefix}:{tenant}:agents"

    def compile_rules(self, tenant: str) -> str:
        """Tenant compile rules (JSON, versioned)."""
        return f"{self.prefix}:{tenant}:rules"

    def prior(self, tenant: str, template: str) -> str:
        """The population prior of a template (JSON :class:`schemas.priors.PriorDocument`).

        >>> Keys("rf").prior("acme", "companion")
        'rf:acme:prior:companion'
        """
        return prior_key(self.prefix, tenant, template)

    def api_keys(self) -> str:
        """Hash of sha256(api key) -> tenant/scope JSON."""
        return f"{self.prefix}:apikeys"
