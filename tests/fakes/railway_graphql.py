#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
"""FAKE of Railway's public GraphQL API (an external SaaS), for tests only.

Railway cannot be reached from the test machines, so the railway_* modules
are exercised against this stdlib HTTP server. It is NOT Railway: it answers
only the operations the modules send, with the root fields, argument names,
input type names and field names of Railway's public schema
(https://backboard.railway.com/graphql/v2), and keeps its state in memory.

How it reads a request (keep the modules' queries in this shape):
- the operation type and the first root field are taken from the query text
  (aliases are not supported); arguments are read from the request's
  ``variables`` under their schema names (``input`` for mutations taking an
  input object) -- inline literals are not parsed;
- under ``project(id:)`` only the connections named in the query text
  (environments, services, volumes) are returned;
- inputs are checked against the fields of Railway's input types
  (ProjectCreateInput, ServiceCreateInput, VariableCollectionUpsertInput, ...):
  an unknown or missing required field is a GraphQL validation error, as on Railway.

Switches for tests (attributes of :class:`FakeRailway`):
- ``token``: the accepted bearer token (others get ``Not Authorized``);
- ``max_page_size``: caps ``first`` so connections paginate;
- ``rate_limit``: the next N requests get HTTP 429 with ``Retry-After: retry_after``;
- ``fail_fields``: root field -> message, answered as GraphQL ``errors``;
- ``deploy_outcome`` / ``deploy_polls``: final status of new deployments and how many
  status reads they stay BUILDING first;
- ``domain_suffix``: generated domains are ``<service>-<environment>.<suffix>``.
Recorded: ``requests`` (every request's operation, root field, variables) and
``mutations`` (root fields of the mutations that were applied); ``GET /_fake/log``
returns both (without variables), e.g. for a check-mode assertion in molecule.

Run standalone (e.g. for a molecule scenario), state lives as long as the process:
``python railway_graphql.py --port 8787 --token T --pid-file /tmp/fake-railway.pid``
and point the modules at ``railway_api_url: http://127.0.0.1:8787/graphql/v2``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPERATION = re.compile(r"^\s*(query|mutation)\b[^{]*\{\s*(\w+)", re.S)

# Input object types: field -> required? (subset of Railway's schema the modules use + common extras).
INPUT_TYPES: dict[str, dict[str, bool]] = {
    "ProjectCreateInput": {"name": False, "description": False, "workspaceId": False, "teamId": False,
                           "isPublic": False, "defaultEnvironmentName": False, "prDeploys": False},
    "EnvironmentCreateInput": {"projectId": True, "name": True, "sourceEnvironmentId": False,
                               "ephemeral": False, "skipInitialDeploys": False, "stageInitialChanges": False,
                               "applyChangesInBackground": False},
    "ServiceCreateInput": {"projectId": True, "name": False, "environmentId": False, "source": False,
                           "variables": False, "branch": False, "icon": False, "templateServiceId": False},
    "ServiceInstanceUpdateInput": {"source": False, "startCommand": False, "numReplicas": False,
                                   "healthcheckPath": False, "restartPolicyType": False, "region": False},
    "VariableCollectionUpsertInput": {"projectId": True, "environmentId": True, "serviceId": False,
                                      "variables": True, "replace": False, "skipDeploys": False},
    "VolumeCreateInput": {"projectId": True, "environmentId": False, "serviceId": False, "mountPath": True,
                          "region": False},
    "ServiceDomainCreateInput": {"environmentId": True, "serviceId": True, "targetPort": False},
    "TemplateDeployV2Input": {"projectId": False, "environmentId": False, "templateId": True,
                              "serializedConfig": True, "workspaceId": False, "teamId": False},
}
# Mutation root field -> input type of its ``input`` argument.
MUTATION_INPUTS = {
    "projectCreate": "ProjectCreateInput",
    "environmentCreate": "EnvironmentCreateInput",
    "serviceCreate": "ServiceCreateInput",
    "serviceInstanceUpdate": "ServiceInstanceUpdateInput",
    "variableCollectionUpsert": "VariableCollectionUpsertInput",
    "volumeCreate": "VolumeCreateInput",
    "serviceDomainCreate": "ServiceDomainCreateInput",
    "templateDeployV2": "TemplateDeployV2Input",
}


class GraphQLError(Exception):
    """Answered as ``{"errors": [{"message": ...}], "data": null}``."""


def new_id() -> str:
    return str(uuid.uuid4())


def connection(items: list[dict], first: int | None, after: str | None, cap: int) -> dict:
    """A Relay connection page over ``items``; cursors are stringified offsets."""
    start = int(after) + 1 if after not in (None, "") else 0
    size = min(first or cap, cap)
    page = items[start:start + size]
    end = start + len(page) - 1
    return {
        "edges": [{"node": node, "cursor": str(start + i)} for i, node in enumerate(page)],
        "pageInfo": {"hasNextPage": end + 1 < len(items), "endCursor": str(end) if page else None},
    }


class FakeRailway:
    """In-memory state of the fake, with the test switches and the call log."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.max_page_size = 100
        self.rate_limit = 0
        self.retry_after = "1"
        self.fail_fields: dict[str, str] = {}
        self.deploy_outcome = "SUCCESS"
        self.deploy_polls = 1
        self.domain_suffix = "up.railway.app"
        self.projects: dict[str, dict] = {}          # id -> {id, name, workspaceId, environments[], services[]}
        self.volumes: dict[str, list[dict]] = {}     # project id -> [{id, name, instances[]}]
        self.instances: dict[tuple[str, str], dict] = {}   # (env, service) -> instance settings
        self.variables: dict[tuple[str, str], dict[str, str]] = {}
        self.domains: dict[tuple[str, str], list[dict]] = {}
        self.deployments: dict[str, dict] = {}
        self.templates = {
            "postgres": {"id": new_id(), "serializedConfig": {"services": {new_id(): {
                "name": "Postgres", "source": {"image": "ghcr.io/railwayapp-templates/postgres-ssl:17"},
                "variables": {"PGHOST": {"defaultValue": "${{RAILWAY_PRIVATE_DOMAIN}}"}},
                "volumeMounts": {"vm": {"mountPath": "/var/lib/postgresql/data"}}}}}},
            "redis": {"id": new_id(), "serializedConfig": {"services": {new_id(): {
                "name": "Redis", "source": {"image": "redis:8.2.1"},
                "variables": {"REDIS_PASSWORD": {"defaultValue": "${{secret(32)}}"}}}}}},
        }
        self.workflows: dict[str, str] = {}
        self.requests: list[dict] = []
        self.mutations: list[str] = []
        self.lock = threading.Lock()

    # -- helpers for tests -------------------------------------------------------------------
    def add_project(self, name: str, environments: tuple[str, ...] = ("production",)) -> dict:
        project = {"id": new_id(), "name": name, "workspaceId": None,
                   "environments": [{"id": new_id(), "name": env} for env in environments], "services": []}
        self.projects[project["id"]] = project
        self.volumes[project["id"]] = []
        return project

    def add_service(self, project_id: str, name: str) -> dict:
        service = {"id": new_id(), "name": name}
        self.projects[project_id]["services"].append(service)
        return service

    # -- dispatch --------------------------------------------------------------------------------
    def handle(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        match = OPERATION.match(query or "")
        if not match:
            raise GraphQLError("Syntax Error: no operation found (the fake reads `query|mutation Name { field`)")
        kind, field = match.groups()
        with self.lock:
            self.requests.append({"kind": kind, "field": field, "variables": variables})
            if field in self.fail_fields:
                raise GraphQLError(self.fail_fields[field])
            handler = getattr(self, f"{kind}_{field}", None)
            if handler is None:
                raise GraphQLError(f'Cannot query field "{field}" on type "{kind.title()}". (not in the fake)')
            if kind == "mutation":
                if field in MUTATION_INPUTS:
                    check_input(MUTATION_INPUTS[field], variables.get("input"))
                result = handler(query, variables)
                self.mutations.append(field)
                return {field: result}
            return {field: handler(query, variables)}

    def page(self, items: list[dict], variables: dict[str, Any]) -> dict:
        return connection(items, variables.get("first"), variables.get("after"), self.max_page_size)

    def project_or_error(self, project_id: str) -> dict:
        project = self.projects.get(project_id)
        if project is None:
            raise GraphQLError("Project not found")
        return project

    # -- queries ---------------------------------------------------------------------------------
    def query_projects(self, _query: str, v: dict) -> dict:
        items = [{"id": p["id"], "name": p["name"]} for p in self.projects.values()
                 if not v.get("workspaceId") or p["workspaceId"] == v["workspaceId"]]
        return self.page(items, v)

    def query_project(self, query: str, v: dict) -> dict:
        project = self.project_or_error(v.get("id"))
        result: dict[str, Any] = {"id": project["id"], "name": project["name"]}
        if re.search(r"\benvironments\b", query):
            result["environments"] = self.page(project["environments"], v)
        if re.search(r"\bservices\b", query):
            result["services"] = self.page(project["services"], v)
        if re.search(r"\bvolumes\b", query):
            nodes = [{"id": vol["id"], "name": vol["name"],
                      "volumeInstances": {"edges": [{"node": i} for i in vol["instances"]]}}
                     for vol in self.volumes[project["id"]]]
            result["volumes"] = self.page(nodes, v)
        return result

    def query_serviceInstance(self, _query: str, v: dict) -> dict:
        key = (v["environmentId"], v["serviceId"])
        if key not in self.instances:
            raise GraphQLError("ServiceInstance not found")
        instance = self.instances[key]
        latest = next((d for d in reversed(list(self.deployments.values()))
                       if (d["environmentId"], d["serviceId"]) == key), None)
        return {**instance, "latestDeployment": {"id": latest["id"], "status": latest["status"]} if latest else None}

    def query_variables(self, _query: str, v: dict) -> dict:
        return dict(self.variables.get((v["environmentId"], v.get("serviceId")), {}))

    def query_domains(self, _query: str, v: dict) -> dict:
        return {"serviceDomains": list(self.domains.get((v["environmentId"], v["serviceId"]), [])),
                "customDomains": []}

    def query_deployment(self, _query: str, v: dict) -> dict:
        deployment = self.deployments.get(v["id"])
        if deployment is None:
            raise GraphQLError("Deployment not found")
        deployment["reads"] += 1
        if deployment["status"] == "BUILDING" and deployment["reads"] > self.deploy_polls:
            deployment["status"] = self.deploy_outcome
        return {"id": deployment["id"], "status": deployment["status"], "staticUrl": deployment["staticUrl"]}

    def query_template(self, _query: str, v: dict) -> dict | None:
        return self.templates.get(v.get("code"))

    def query_workflowStatus(self, _query: str, v: dict) -> dict:
        return {"status": self.workflows.get(v["workflowId"], "NotFound"), "error": None}

    # -- mutations -------------------------------------------------------------------------------
    def mutation_projectCreate(self, _query: str, v: dict) -> dict:
        data = v["input"]
        project = self.add_project(data.get("name") or "untitled",
                                   (data.get("defaultEnvironmentName") or "production",))
        project["workspaceId"] = data.get("workspaceId")
        return {"id": project["id"], "name": project["name"],
                "environments": connection(project["environments"], None, None, 100)}

    def mutation_environmentCreate(self, _query: str, v: dict) -> dict:
        data = v["input"]
        environment = {"id": new_id(), "name": data["name"]}
        self.project_or_error(data["projectId"])["environments"].append(environment)
        return environment

    def mutation_serviceCreate(self, _query: str, v: dict) -> dict:
        data = v["input"]
        project = self.project_or_error(data["projectId"])
        service = self.add_service(project["id"], data.get("name") or "service")
        for environment in project["environments"]:
            if data.get("environmentId") in (None, environment["id"]):
                self.instances[(environment["id"], service["id"])] = {
                    "id": new_id(), "startCommand": None, "source": dict(data.get("source") or {}) or None}
        if data.get("variables"):
            self.variables[(data.get("environmentId"), service["id"])] = dict(data["variables"])
        return service

    def mutation_serviceInstanceUpdate(self, _query: str, v: dict) -> bool:
        instance = self.instances.get((v.get("environmentId"), v["serviceId"]))
        if instance is None:
            raise GraphQLError("ServiceInstance not found")
        data = v["input"]
        if "source" in data:
            instance["source"] = dict(data["source"] or {})
        if "startCommand" in data:
            instance["startCommand"] = data["startCommand"]
        return True

    def mutation_variableCollectionUpsert(self, _query: str, v: dict) -> bool:
        data = v["input"]
        if not all(isinstance(value, str) for value in data["variables"].values()):
            raise GraphQLError('Variable "$input" got invalid value: EnvironmentVariables values must be strings')
        key = (data["environmentId"], data.get("serviceId"))
        store = {} if data.get("replace") else self.variables.get(key, {})
        self.variables[key] = {**store, **data["variables"]}
        if not data.get("skipDeploys") and data.get("serviceId"):
            self.start_deployment(data["environmentId"], data["serviceId"])
        return True

    def mutation_volumeCreate(self, _query: str, v: dict) -> dict:
        data = v["input"]
        self.project_or_error(data["projectId"])
        volume = {"id": new_id(), "name": f"volume-{len(self.volumes[data['projectId']]) + 1}", "instances": [
            {"id": new_id(), "mountPath": data["mountPath"], "serviceId": data.get("serviceId"),
             "environmentId": data.get("environmentId")}]}
        self.volumes[data["projectId"]].append(volume)
        return {"id": volume["id"], "name": volume["name"]}

    def mutation_serviceDomainCreate(self, _query: str, v: dict) -> dict:
        data = v["input"]
        key = (data["environmentId"], data["serviceId"])
        # Railway's pattern is <service>-<environment>[-<random>].up.railway.app
        service = next(s for p in self.projects.values() for s in p["services"] if s["id"] == data["serviceId"])
        environment = next(e for p in self.projects.values() for e in p["environments"]
                           if e["id"] == data["environmentId"])
        name = re.sub(r"[^a-z0-9-]+", "-", f"{service['name']}-{environment['name']}".lower())
        taken = {d["domain"] for domains in self.domains.values() for d in domains}
        fqdn = f"{name}.{self.domain_suffix}"
        if fqdn in taken:
            fqdn = f"{name}-{data['serviceId'][:4]}.{self.domain_suffix}"
        domain = {"id": new_id(), "domain": fqdn, "targetPort": data.get("targetPort")}
        self.domains.setdefault(key, []).append(domain)
        return domain

    def mutation_serviceInstanceDeployV2(self, _query: str, v: dict) -> str:
        if (v.get("environmentId"), v.get("serviceId")) not in self.instances:
            raise GraphQLError("ServiceInstance not found")
        return self.start_deployment(v["environmentId"], v["serviceId"])

    def mutation_templateDeployV2(self, _query: str, v: dict) -> dict:
        data = v["input"]
        template = next((t for t in self.templates.values() if t["id"] == data["templateId"]), None)
        if template is None:
            raise GraphQLError("Template not found")
        project = self.project_or_error(data["projectId"])
        for config in data["serializedConfig"]["services"].values():
            service = self.add_service(project["id"], config["name"])
            self.instances[(data["environmentId"], service["id"])] = {
                "id": new_id(), "startCommand": None, "source": dict(config.get("source") or {})}
            self.start_deployment(data["environmentId"], service["id"])
        workflow_id = new_id()
        self.workflows[workflow_id] = "Complete"
        return {"projectId": project["id"], "workflowId": workflow_id}

    def start_deployment(self, environment_id: str, service_id: str) -> str:
        deployment = {"id": new_id(), "status": "BUILDING", "reads": 0, "environmentId": environment_id,
                      "serviceId": service_id, "staticUrl": None}
        self.deployments[deployment["id"]] = deployment
        return deployment["id"]


def check_input(type_name: str, value: Any) -> None:
    """Validate an input object like GraphQL would (unknown fields, missing required ones)."""
    if not isinstance(value, dict):
        raise GraphQLError(f'Variable "$input" of required type "{type_name}!" was not provided.')
    fields = INPUT_TYPES[type_name]
    for key in value:
        if key not in fields:
            raise GraphQLError(
                f'Variable "$input" got invalid value; Field "{key}" is not defined by type "{type_name}".')
    for key, required in fields.items():
        if required and value.get(key) is None:
            raise GraphQLError(f'Variable "$input" got invalid value; Field "{key}" of required type was not provided.')


def make_handler(state: FakeRailway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            """Test introspection (not a Railway endpoint): what the fake was asked to do."""
            if self.path != "/_fake/log":
                self._send(404, {"errors": [{"message": "not found"}]})
                return
            with state.lock:
                self._send(200, {"mutations": list(state.mutations),
                                 "requests": [{"kind": r["kind"], "field": r["field"]} for r in state.requests]})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                limited = state.rate_limit > 0
                if limited:
                    state.rate_limit -= 1
                    state.requests.append({"kind": "rate-limited", "field": None, "variables": {}})
            if limited:
                self._send(429, {"errors": [{"message": "Rate limit exceeded"}]},
                           {"Retry-After": state.retry_after, "X-RateLimit-Remaining": "0"})
                return
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._send(200, {"errors": [{"message": "Not Authorized"}], "data": None})
                return
            try:
                request = json.loads(body or b"{}")
                data = state.handle(request.get("query", ""), request.get("variables") or {})
            except GraphQLError as exc:
                self._send(200, {"errors": [{"message": str(exc)}], "data": None})
                return
            except (KeyError, TypeError, ValueError) as exc:
                self._send(400, {"errors": [{"message": f"Bad request: {exc!r}"}]})
                return
            self._send(200, {"data": data})

    return Handler


def serve(state: FakeRailway, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start the fake in a daemon thread; the caller shuts it down."""
    server = ThreadingHTTPServer((host, port), make_handler(state))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="FAKE Railway GraphQL API for tests (not Railway).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--deploy-polls", type=int, default=1)
    parser.add_argument("--deploy-outcome", default="SUCCESS", choices=["SUCCESS", "FAILED", "CRASHED"])
    parser.add_argument("--domain-suffix", default="up.railway.app")
    parser.add_argument("--pid-file", help="write the process id here (so a test teardown can stop exactly this fake)")
    args = parser.parse_args()
    state = FakeRailway(args.token)
    state.deploy_polls = args.deploy_polls
    state.deploy_outcome = args.deploy_outcome
    state.domain_suffix = args.domain_suffix
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    if args.pid_file:
        with open(args.pid_file, "w", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
    print(f"FAKE Railway GraphQL API on http://{args.host}:{server.server_address[1]}/graphql/v2", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
