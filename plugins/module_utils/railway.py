# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Small client for Railway's public GraphQL API, shared by the railway_* modules.

- One POST per operation to the v2 endpoint with ``Authorization: Bearer``;
  the token lives in the request headers only and is never put in a message.
- A response with ``errors`` raises :class:`RailwayError` carrying the
  messages Railway sent (GraphQL reports most failures with HTTP 200).
- HTTP 429 (rate limit) and 503 are retried a bounded number of times,
  sleeping for ``Retry-After`` seconds (capped) when the server sends it.
- Relay connections (``edges``/``pageInfo``) are walked to the last page.
- Every argument is passed as a GraphQL variable named after the schema
  argument, never interpolated into the query text.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.urls import Request, make_context

DEFAULT_API_URL = "https://backboard.railway.com/graphql/v2"
MAX_RETRIES = 5
MAX_RETRY_AFTER = 60
PAGE_SIZE = 50
# Deployment statuses that end a wait (Railway's DeploymentStatus enum).
DEPLOY_OK = frozenset({"SUCCESS"})
DEPLOY_BAD = frozenset({"FAILED", "CRASHED", "REMOVED", "SKIPPED"})

# Options every railway_* module takes (merged into its argument_spec).
COMMON_ARGS: dict[str, dict[str, Any]] = dict(
    railway_token=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["RAILWAY_API_TOKEN"])),
    railway_api_url=dict(type="str", default=DEFAULT_API_URL),
    request_timeout=dict(type="int", default=30),
)


def sleep(seconds: float) -> None:
    """Indirection so tests can skip real waiting."""
    time.sleep(seconds)


class RailwayError(Exception):
    """A failed call: GraphQL errors, HTTP errors after retries, or a timeout."""


class RailwayClient:
    """GraphQL over HTTPS to Railway (or to the test fake at another URL)."""

    def __init__(self, token: str, url: str = DEFAULT_API_URL, timeout: int = 30,
                 page_size: int = PAGE_SIZE) -> None:
        self._token = token
        self.url = url
        self.timeout = timeout
        self.page_size = page_size
        self.mutations: list[str] = []  # root fields of the mutations sent, for reporting
        # One verifying TLS context for the whole run: building it loads the CA store (~0.1 s).
        self._http = Request(http_agent="aistack.hosting-railway", timeout=timeout,
                             context=make_context())

    def call(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one operation; return its ``data``. Retries 429 (and 503 for queries) after Retry-After."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        # 429 is refused before any work, so it is safe to resend; a 503 may come after a
        # mutation was applied, so only queries are resent on it.
        retryable = (429,) if query.lstrip().startswith("mutation") else (429, 503)
        for attempt in range(MAX_RETRIES + 1):
            try:
                response = self._http.open("POST", self.url, data=body, headers=headers)
                payload = response.read()
                break
            except HTTPError as exc:
                detail = exc.read() if hasattr(exc, "read") else b""
                if exc.code in retryable and attempt < MAX_RETRIES:
                    sleep(retry_delay(exc.headers.get("Retry-After") if exc.headers else None, attempt))
                    continue
                messages = graphql_messages(detail)
                if messages:
                    raise RailwayError(f"Railway API HTTP {exc.code}: {messages}") from None
                if exc.code == 429:
                    raise RailwayError(f"Railway API rate limit: still HTTP 429 after {MAX_RETRIES} retries") from None
                raise RailwayError(f"Railway API HTTP {exc.code}: {detail[:300].decode('utf-8', 'replace')}") from None
            except URLError as exc:
                raise RailwayError(f"cannot reach the Railway API at {self.url}: {exc.reason}") from None
            except OSError as exc:  # timeouts and resets while reading the response
                raise RailwayError(f"Railway API at {self.url} did not answer: {exc}") from None
        try:
            parsed = json.loads(payload)
        except ValueError:
            raise RailwayError(f"Railway API returned non-JSON: {payload[:200]!r}") from None
        messages = graphql_messages(parsed)
        if messages:
            raise RailwayError(f"Railway API error: {messages}")
        return parsed.get("data") or {}

    def pause(self, seconds: float) -> None:
        """Wait between polls (through the module-level ``sleep`` tests replace)."""
        sleep(seconds)

    def mutate(self, query: str, variables: dict[str, Any], root: str) -> Any:
        """Run a mutation and return its root field's value."""
        self.mutations.append(root)
        return self.call(query, variables).get(root)

    def paginate(self, query: str, variables: dict[str, Any], path: list[str]) -> Iterator[dict[str, Any]]:
        """Yield the nodes of the connection at ``path`` in ``data``, page after page.

        The query must declare ``$first: Int`` and ``$after: String`` and pass
        them to that connection, and select ``pageInfo { hasNextPage endCursor }``.
        """
        after = None
        for _page in range(10000):  # a hard stop against a server that repeats its cursor
            data = self.call(query, {**variables, "first": self.page_size, "after": after})
            connection: Any = data
            for key in path:
                connection = (connection or {}).get(key)
            if connection is None:
                raise RailwayError(f"Railway API returned no {'.'.join(path)}")
            for edge in connection.get("edges") or []:
                yield edge["node"]
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor") or info.get("endCursor") == after:
                return
            after = info["endCursor"]

    def wait_deployment(self, deployment_id: str, timeout: int, interval: int) -> dict[str, Any]:
        """Poll a deployment until SUCCESS (returned) or a failed state / timeout (raised)."""
        status = "UNKNOWN"
        for _poll in range(max(1, timeout // max(1, interval)) + 1):
            deployment = self.call(DEPLOYMENT_QUERY, {"id": deployment_id}).get("deployment") or {}
            status = deployment.get("status") or "UNKNOWN"
            if status in DEPLOY_OK:
                return deployment
            if status in DEPLOY_BAD:
                raise RailwayError(f"deployment {deployment_id} ended {status}; see its build/deploy logs in Railway")
            sleep(interval)
        raise RailwayError(f"deployment {deployment_id} still {status} after {timeout}s (deploy_timeout)")


def retry_delay(header: str | None, attempt: int) -> float:
    """Seconds to wait: Retry-After when given (capped), else a short exponential backoff."""
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER) if header is not None else min(2 ** attempt, 30)
    except ValueError:
        return min(2 ** attempt, 30)


def graphql_messages(payload: Any) -> str:
    """The ``errors[].message`` of a GraphQL response (dict or raw bytes), joined; empty if none."""
    if isinstance(payload, (bytes, str)):
        try:
            payload = json.loads(payload or b"{}")
        except ValueError:
            return ""
    if not isinstance(payload, dict) or not payload.get("errors"):
        return ""
    return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in payload["errors"])


def exactly_one(nodes: list[dict[str, Any]], kind: str, name: str, scope: str) -> dict[str, Any] | None:
    """The single node named ``name``; None when absent; RailwayError when ambiguous."""
    found = [node for node in nodes if node.get("name") == name]
    if len(found) > 1:
        ids = ", ".join(node["id"] for node in found)
        raise RailwayError(
            f"{len(found)} {kind}s named {name!r} in {scope} ({ids}): Railway does not keep names unique, "
            f"so this module will not guess. Rename or delete the extra {kind}s in the Railway dashboard."
        )
    return found[0] if found else None


# --- Operations (names and fields as in Railway's public schema) -----------------------------

PROJECTS_QUERY = """
query Projects($workspaceId: String, $first: Int, $after: String) {
  projects(workspaceId: $workspaceId, first: $first, after: $after) {
    edges { node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}"""

PROJECT_ENVIRONMENTS_QUERY = """
query ProjectEnvironments($id: String!, $first: Int, $after: String) {
  project(id: $id) {
    environments(first: $first, after: $after) {
      edges { node { id name } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

PROJECT_SERVICES_QUERY = """
query ProjectServices($id: String!, $first: Int, $after: String) {
  project(id: $id) {
    services(first: $first, after: $after) {
      edges { node { id name } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

PROJECT_VOLUMES_QUERY = """
query ProjectVolumes($id: String!, $first: Int, $after: String) {
  project(id: $id) {
    volumes(first: $first, after: $after) {
      edges { node { id name volumeInstances { edges { node { id mountPath serviceId environmentId } } } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""

PROJECT_CREATE = """
mutation ProjectCreate($input: ProjectCreateInput!) {
  projectCreate(input: $input) { id name environments { edges { node { id name } } } }
}"""

ENVIRONMENT_CREATE = """
mutation EnvironmentCreate($input: EnvironmentCreateInput!) {
  environmentCreate(input: $input) { id name }
}"""

SERVICE_INSTANCE_QUERY = """
query ServiceInstance($environmentId: String!, $serviceId: String!) {
  serviceInstance(environmentId: $environmentId, serviceId: $serviceId) {
    id startCommand source { image repo } latestDeployment { id status }
  }
}"""

SERVICE_CREATE = """
mutation ServiceCreate($input: ServiceCreateInput!) {
  serviceCreate(input: $input) { id name }
}"""

SERVICE_INSTANCE_UPDATE = """
mutation ServiceInstanceUpdate($serviceId: String!, $environmentId: String!, $input: ServiceInstanceUpdateInput!) {
  serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)
}"""

VARIABLES_QUERY = """
query Variables($projectId: String!, $environmentId: String!, $serviceId: String, $unrendered: Boolean) {
  variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, unrendered: $unrendered)
}"""

VARIABLE_COLLECTION_UPSERT = """
mutation VariableCollectionUpsert($input: VariableCollectionUpsertInput!) {
  variableCollectionUpsert(input: $input)
}"""

VOLUME_CREATE = """
mutation VolumeCreate($input: VolumeCreateInput!) {
  volumeCreate(input: $input) { id name }
}"""

DOMAINS_QUERY = """
query Domains($projectId: String!, $environmentId: String!, $serviceId: String!) {
  domains(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId) {
    serviceDomains { id domain targetPort }
  }
}"""

SERVICE_DOMAIN_CREATE = """
mutation ServiceDomainCreate($input: ServiceDomainCreateInput!) {
  serviceDomainCreate(input: $input) { id domain targetPort }
}"""

SERVICE_INSTANCE_DEPLOY = """
mutation ServiceInstanceDeploy($serviceId: String!, $environmentId: String!) {
  serviceInstanceDeployV2(serviceId: $serviceId, environmentId: $environmentId)
}"""

DEPLOYMENT_QUERY = """
query Deployment($id: String!) {
  deployment(id: $id) { id status staticUrl }
}"""

TEMPLATE_QUERY = """
query TemplateDetail($code: String!) {
  template(code: $code) { id serializedConfig }
}"""

TEMPLATE_DEPLOY = """
mutation TemplateDeploy($input: TemplateDeployV2Input!) {
  templateDeployV2(input: $input) { projectId workflowId }
}"""

WORKFLOW_STATUS_QUERY = """
query WorkflowStatus($workflowId: String!) {
  workflowStatus(workflowId: $workflowId) { status error }
}"""


def client_from_params(params: dict[str, Any]) -> RailwayClient:
    """A client configured from the COMMON_ARGS options."""
    return RailwayClient(params["railway_token"], params["railway_api_url"], params["request_timeout"])


def with_common_args(spec: dict[str, Any]) -> dict[str, Any]:
    """argument_spec = the module's own options + the shared connection options."""
    return {**spec, **{key: dict(value) for key, value in COMMON_ARGS.items()}}
