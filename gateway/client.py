"""A small typed sync client for the gateway's v1 HTTP API.

>>> c = RewardflowClient("http://127.0.0.1:1", timeout=0.2)
>>> c.ready()
False
>>> c.close()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx

ContextValue = str | int | float | bool


class RewardflowError(Exception):
    """The gateway answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, body: str, method: str = "", url: str = "") -> None:
        self.status = status
        self.body = body
        self.method = method
        self.url = url
        super().__init__(f"{method} {url} -> {status}: {body[:500]}")


class RewardflowClient:
    """Sync client over one keep-alive ``httpx.Client``; use as a context manager."""

    def __init__(
        self, base_url: str, api_key: str | None = None, timeout: float = 5.0
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=30.0),
        )

    # -- plumbing ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise RewardflowError(0, repr(exc), method, self.base_url + path) from exc
        if resp.status_code >= 400:
            raise RewardflowError(resp.status_code, resp.text, method, str(resp.url))
        return resp

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RewardflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- API --------------------------------------------------------------------------------
    def upsert_agent(self, agent_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Register or update an agent; returns the stored spec plus ``created``."""
        return dict(self._request("PUT", f"/v1/agents/{agent_id}", json=dict(spec)).json())

    def agent(self, agent_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/agents/{agent_id}").json())

    def decide(
        self,
        agent_id: str,
        user_id: str,
        context: Mapping[str, ContextValue] | None = None,
        ts: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Ask for the next action; returns decision_id, action, propensity, prompt, ..."""
        body: dict[str, Any] = {"user_id": user_id, "context": dict(context or {})}
        if ts is not None:
            body["ts"] = ts.isoformat() if isinstance(ts, datetime) else ts
        return dict(self._request("POST", f"/v1/agents/{agent_id}/decide", json=body).json())

    def feedback(
        self, decision_id: str | None, agent_id: str, user_id: str, kind: str, value: float,
        ts: datetime | str | None = None,
    ) -> None:
        """Send explicit feedback (thumbs, rating 1..5, accept, ignore, ...)."""
        body: dict[str, Any] = {
            "decision_id": decision_id, "agent_id": agent_id, "user_id": user_id,
            "kind": kind, "value": value,
        }
        if ts is not None:
            body["ts"] = ts.isoformat() if isinstance(ts, datetime) else ts
        self._request("POST", "/v1/feedback", json=body)

    def signals(self, signals: Iterable[Mapping[str, Any]]) -> None:
        """Send a batch of implicit signals."""
        items = []
        for s in signals:
            d = dict(s)
            if isinstance(d.get("ts"), datetime):
                d["ts"] = d["ts"].isoformat()
            items.append(d)
        self._request("POST", "/v1/signals", json={"signals": items})

    def policy(self, agent_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/agents/{agent_id}/policy").json())

    def policy_versions(self, agent_id: str) -> list[dict[str, Any]]:
        """Known policy versions, oldest first."""
        data = self._request("GET", f"/v1/agents/{agent_id}/policy/versions").json()
        return list(data["versions"])

    def prior(self, template: str) -> dict[str, Any]:
        """The template's population prior (``GET /v1/templates/{template}/prior``)."""
        return dict(self._request("GET", f"/v1/templates/{template}/prior").json())

    def projection(self, agent_id: str, window: str = "1h") -> dict[str, Any]:
        resp = self._request(
            "GET", f"/v1/agents/{agent_id}/projection", params={"window": window}
        )
        return dict(resp.json())

    def relationship(self, agent_id: str, user_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/agents/{agent_id}/users/{user_id}").json())

    def feedback_prompt(
        self, agent_id: str, user_id: str, session_seconds: float = 0.0, agent_messages: int = 0
    ) -> dict[str, Any]:
        params = {"user_id": user_id, "session_seconds": session_seconds,
                  "agent_messages": agent_messages}
        resp = self._request("GET", f"/v1/agents/{agent_id}/feedback-prompt", params=params)
        return dict(resp.json())

    def put_rules(self, rules: str | Mapping[str, Any]) -> dict[str, Any]:
        """Upload compile rules (YAML text or a mapping); admin scope."""
        if isinstance(rules, str):
            resp = self._request("PUT", "/v1/admin/rules", content=rules.encode(),
                                 headers={"Content-Type": "application/yaml"})
        else:
            resp = self._request("PUT", "/v1/admin/rules", json=dict(rules))
        return dict(resp.json())

    def ready(self) -> bool:
        """True when the gateway answers /readyz with 200."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False
