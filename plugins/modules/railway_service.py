#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Find or create a Railway service (image or template), its variables, volume and domain; deploy once."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: railway_service
short_description: Converge one Railway service and deploy it once when something changed
version_added: 0.1.0
description:
  - Finds the service by exact name in the project (fails on duplicates rather
    than guessing) or creates it, either empty and then pointed at O(image), or
    from a Railway template such as C(postgres) or C(redis) (O(template)).
  - For an image service, sets the image and start command on the environment's
    service instance when they differ.
  - Upserts O(variables) and O(secret_variables) in one
    C(variableCollectionUpsert) with C(skipDeploys), and only the keys whose
    value differs; other variables on the service are left alone.
  - Finds or creates a volume at O(volume_mount_path) and a Railway-generated
    domain (O(domain)); returns the public URL.
  - Then triggers one deployment when anything above changed (O(deploy)) and
    polls it until C(SUCCESS); C(FAILED), C(CRASHED) or a timeout fail the task.
  - In check mode only queries are sent. Never deletes anything.
options:
  project_id:
    description: Project id (from M(aistack.hosting.railway_project)).
    type: str
    required: true
  environment_id:
    description: Environment id (from M(aistack.hosting.railway_project)).
    type: str
    required: true
  name:
    description: Exact service name. Other services reference its variables as C(${{<name>.VAR}}).
    type: str
    required: true
  image:
    description: Container image with a pinned tag, e.g. C(n8nio/n8n:1.123.4).
    type: str
  template:
    description:
      - Code of a single-service Railway template to create the service from,
        e.g. C(postgres) or C(redis). The template deploys the service itself.
      - Only used to create a missing service; an existing one is never re-templated.
    type: str
  start_command:
    description: Start command of the service instance (e.g. C(n8n worker)); empty keeps the image's.
    type: str
    default: ""
  variables:
    description:
      - Plain variables (values shown in the task result only as masked diffs).
        Railway reference syntax such as C(${{Postgres.PGHOST}}) or
        C(https://${{RAILWAY_PUBLIC_DOMAIN}}) is stored as is and compared unrendered.
    type: dict
    default: {}
  secret_variables:
    description: Variables whose values are secrets (encryption keys, passwords); never logged.
    type: dict
    default: {}
  volume_mount_path:
    description: Mount path of the service's volume; created when the service has none. Empty means no volume.
    type: str
    default: ""
  domain:
    description: Give the service a Railway-generated public domain (find or create).
    type: bool
    default: false
  target_port:
    description: Port the generated domain routes to (the port the container listens on).
    type: int
  deploy:
    description: Trigger one deployment after changes (the variable upsert itself never deploys).
    type: bool
    default: true
  deploy_timeout:
    description: Seconds to wait for the deployment (and a template's workflow) to finish.
    type: int
    default: 900
  poll_interval:
    description: Seconds between status polls.
    type: int
    default: 5
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - aistack.hosting.railway
attributes:
  check_mode:
    support: full
    details: Only queries are sent; what would change is reported, nothing is created or deployed.
  diff_mode:
    support: full
    details: Variable keys are shown; their values never are.
  platform:
    platforms: posix
notes:
  - A volume at a different mount path than asked is reported as an error rather than moved
    (moving the mount of a database's data is not something to do implicitly).
  - HTTP 429 responses are retried after their C(Retry-After) delay, a bounded number of times.
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Postgres from Railway's template
  aistack.hosting.railway_service:
    project_id: "{{ __railway_project.project_id }}"
    environment_id: "{{ __railway_project.environment_id }}"
    name: Postgres
    template: postgres
    railway_token: "{{ vault_railway_token }}"

- name: n8n from its pinned image, wired to Postgres, with a volume and a public domain
  aistack.hosting.railway_service:
    project_id: "{{ __railway_project.project_id }}"
    environment_id: "{{ __railway_project.environment_id }}"
    name: n8n
    image: n8nio/n8n:1.123.4
    variables:
      DB_TYPE: postgresdb
      DB_POSTGRESDB_HOST: "${{ '{{' }}Postgres.PGHOST{{ '}}' }}"
      N8N_PROTOCOL: https
      N8N_PORT: "5678"
      N8N_HOST: "${{ '{{' }}RAILWAY_PUBLIC_DOMAIN{{ '}}' }}"
      WEBHOOK_URL: "https://${{ '{{' }}RAILWAY_PUBLIC_DOMAIN{{ '}}' }}/"
    secret_variables:
      N8N_ENCRYPTION_KEY: "{{ vault_n8n_encryption_key }}"
    volume_mount_path: /home/node/.n8n
    domain: true
    target_port: 5678
    railway_token: "{{ vault_railway_token }}"
  register: __railway_n8n
"""

RETURN = r"""
service_id:
  description: Id of the service (null in check mode when it would be created).
  returned: always
  type: str
url:
  description: Public URL C(https://<domain>) when the service has a generated domain, else empty.
  returned: always
  type: str
  sample: https://n8n-production-1a2b.up.railway.app
domain:
  description: The generated domain, empty when none.
  returned: always
  type: str
volume_id:
  description: Id of the volume mounted at O(volume_mount_path), empty when none (or not created yet).
  returned: always
  type: str
changes:
  description: What changed (or would change), e.g. C(service created), C(variables), C(volume), C(domain), C(deployed).
  returned: always
  type: list
  elements: str
variables_changed:
  description: Names of the variables that were (or would be) upserted; never their values.
  returned: always
  type: list
  elements: str
deployment_id:
  description: Id of the deployment triggered in this run, else of the latest one (may be empty).
  returned: always
  type: str
deployment_status:
  description: Status of that deployment, e.g. C(SUCCESS).
  returned: always
  type: str
"""

import copy
import json
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aistack.hosting.plugins.module_utils.railway import (
    DOMAINS_QUERY,
    PROJECT_SERVICES_QUERY,
    PROJECT_VOLUMES_QUERY,
    SERVICE_CREATE,
    SERVICE_DOMAIN_CREATE,
    SERVICE_INSTANCE_DEPLOY,
    SERVICE_INSTANCE_QUERY,
    SERVICE_INSTANCE_UPDATE,
    TEMPLATE_DEPLOY,
    TEMPLATE_QUERY,
    VARIABLE_COLLECTION_UPSERT,
    VARIABLES_QUERY,
    VOLUME_CREATE,
    WORKFLOW_STATUS_QUERY,
    RailwayClient,
    RailwayError,
    client_from_params,
    exactly_one,
    with_common_args,
)

MASK = "********"


class Converger:
    """One run of the module: each step queries, compares, and mutates unless in check mode."""

    def __init__(self, client: RailwayClient, params: dict[str, Any], check_mode: bool) -> None:
        self.client = client
        self.p = params
        self.check = check_mode
        self.changes: list[str] = []
        self.ids = {"projectId": params["project_id"], "environmentId": params["environment_id"]}
        self.diff_before: dict[str, Any] = {}
        self.diff_after: dict[str, Any] = {}

    # -- service -------------------------------------------------------------------------
    def find_service(self) -> dict | None:
        services = list(self.client.paginate(PROJECT_SERVICES_QUERY, {"id": self.p["project_id"]},
                                             ["project", "services"]))
        return exactly_one(services, "service", self.p["name"], f"project {self.p['project_id']}")

    def create_service(self) -> str | None:
        """Create the service; return its id (None in check mode)."""
        self.changes.append("service created")
        if self.check:
            return None
        if self.p["template"]:
            return self.create_from_template()
        created = self.client.mutate(SERVICE_CREATE, {"input": {
            "projectId": self.p["project_id"], "environmentId": self.p["environment_id"], "name": self.p["name"],
        }}, "serviceCreate")
        return created["id"]

    def create_from_template(self) -> str:
        """Deploy a single-service template under our name, wait for its workflow, find the service."""
        template = self.client.call(TEMPLATE_QUERY, {"code": self.p["template"]}).get("template")
        if not template:
            raise RailwayError(f"no Railway template with code {self.p['template']!r}")
        config = copy.deepcopy(template["serializedConfig"])
        if isinstance(config, str):
            config = json.loads(config)
        services = config.get("services") or {}
        if len(services) != 1:
            raise RailwayError(f"template {self.p['template']!r} has {len(services)} services; "
                               "only single-service templates (postgres, redis, ...) are supported")
        next(iter(services.values()))["name"] = self.p["name"]
        result = self.client.mutate(TEMPLATE_DEPLOY, {"input": {
            **self.ids, "templateId": template["id"], "serializedConfig": config,
        }}, "templateDeployV2")
        self.wait_workflow(result.get("workflowId"))
        for _attempt in range(self.attempts()):
            service = self.find_service()
            if service:
                return service["id"]
            self.client.pause(self.p["poll_interval"])
        raise RailwayError(f"template {self.p['template']!r} deployed but service {self.p['name']!r} did not appear")

    def wait_workflow(self, workflow_id: str | None) -> None:
        if not workflow_id:
            return
        for _attempt in range(self.attempts()):
            status = self.client.call(WORKFLOW_STATUS_QUERY, {"workflowId": workflow_id}).get("workflowStatus") or {}
            if status.get("error") or status.get("status") == "Error":
                raise RailwayError(f"template deploy failed: {status.get('error') or 'workflow Error'}")
            if status.get("status") in ("Complete", "NotFound"):
                return
            self.client.pause(self.p["poll_interval"])
        raise RailwayError(f"template deploy still running after {self.p['deploy_timeout']}s (deploy_timeout)")

    def attempts(self) -> int:
        return max(1, self.p["deploy_timeout"] // max(1, self.p["poll_interval"])) + 1

    # -- instance settings -------------------------------------------------------------------
    def converge_instance(self, service_id: str | None, instance: dict) -> None:
        """Image and start command of the service instance in this environment."""
        if not self.p["image"]:
            return
        current_image = ((instance.get("source") or {}).get("image")) or ""
        wanted: dict[str, Any] = {}
        if current_image != self.p["image"]:
            wanted["source"] = {"image": self.p["image"]}
        if (instance.get("startCommand") or "") != self.p["start_command"]:
            wanted["startCommand"] = self.p["start_command"] or None
        self.diff_before.update(image=current_image, start_command=instance.get("startCommand") or "")
        self.diff_after.update(image=self.p["image"], start_command=self.p["start_command"])
        if not wanted:
            return
        self.changes.append("image" if "source" in wanted else "start command")
        if self.check or service_id is None:
            return
        self.client.mutate(SERVICE_INSTANCE_UPDATE, {
            "serviceId": service_id, "environmentId": self.p["environment_id"], "input": wanted,
        }, "serviceInstanceUpdate")

    def converge_variables(self, service_id: str | None) -> list[str]:
        """Upsert the variables that differ, in one batch that does not deploy; return their names."""
        wanted = {**self.p["variables"], **self.p["secret_variables"]}
        if not wanted:
            return []
        current: dict[str, Any] = {}
        if service_id:
            current = self.client.call(VARIABLES_QUERY, {
                **self.ids, "serviceId": service_id, "unrendered": True,
            }).get("variables") or {}
        delta = {key: value for key, value in wanted.items() if current.get(key) != value}
        self.diff_before["variables"] = {key: MASK for key in sorted(wanted) if key in current}
        self.diff_after["variables"] = {key: MASK + (" (changed)" if key in delta else "") for key in sorted(wanted)}
        if not delta:
            return []
        self.changes.append("variables")
        if not self.check and service_id:
            self.client.mutate(VARIABLE_COLLECTION_UPSERT, {"input": {
                **self.ids, "serviceId": service_id, "variables": delta, "skipDeploys": True,
            }}, "variableCollectionUpsert")
        return sorted(delta)

    def converge_volume(self, service_id: str | None) -> str:
        """Volume id at the mount path ('' when none wanted or only planned)."""
        path = self.p["volume_mount_path"]
        if not path:
            return ""
        mine = []
        if service_id:
            for volume in self.client.paginate(PROJECT_VOLUMES_QUERY, {"id": self.p["project_id"]},
                                               ["project", "volumes"]):
                for edge in (volume.get("volumeInstances") or {}).get("edges") or []:
                    instance = edge["node"]
                    if (instance.get("serviceId") == service_id
                            and instance.get("environmentId") == self.p["environment_id"]):
                        mine.append((volume["id"], instance.get("mountPath")))
        for volume_id, mount_path in mine:
            if mount_path == path:
                return volume_id
        if mine:
            raise RailwayError(f"service {self.p['name']!r} already has a volume mounted at {mine[0][1]!r}, "
                               f"not {path!r}; Railway allows one volume per service. Move the mount in the "
                               "dashboard (the data stays on the volume) or set volume_mount_path to it.")
        self.changes.append("volume")
        self.diff_before["volume_mount_path"] = ""
        self.diff_after["volume_mount_path"] = path
        if self.check or not service_id:
            return ""
        created = self.client.mutate(VOLUME_CREATE, {"input": {
            **self.ids, "serviceId": service_id, "mountPath": path,
        }}, "volumeCreate")
        return created["id"]

    def converge_domain(self, service_id: str | None) -> str:
        """The service's generated domain ('' when not wanted or only planned)."""
        if not self.p["domain"]:
            return ""
        if service_id:
            found = self.client.call(DOMAINS_QUERY, {**self.ids, "serviceId": service_id}).get("domains") or {}
            existing = found.get("serviceDomains") or []
            if existing:
                return existing[0]["domain"]
        self.changes.append("domain")
        self.diff_before["domain"] = ""
        self.diff_after["domain"] = "(generated)"
        if self.check or not service_id:
            return ""
        wanted: dict[str, Any] = {"environmentId": self.p["environment_id"], "serviceId": service_id}
        if self.p["target_port"]:
            wanted["targetPort"] = self.p["target_port"]
        return self.client.mutate(SERVICE_DOMAIN_CREATE, {"input": wanted}, "serviceDomainCreate")["domain"]

    def deploy(self, service_id: str) -> dict:
        """Trigger one deployment of the instance and wait for it."""
        deployment_id = self.client.mutate(SERVICE_INSTANCE_DEPLOY, {
            "serviceId": service_id, "environmentId": self.p["environment_id"],
        }, "serviceInstanceDeployV2")
        if not isinstance(deployment_id, str) or not deployment_id:
            raise RailwayError("serviceInstanceDeployV2 returned no deployment id")
        return self.client.wait_deployment(deployment_id, self.p["deploy_timeout"], self.p["poll_interval"])

    # -- the whole run ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        service = self.find_service()
        service_id = service["id"] if service else self.create_service()
        template_created = bool(self.p["template"]) and service is None
        self.diff_before["service"] = self.p["name"] if service else None
        self.diff_after["service"] = self.p["name"]
        instance: dict = {}
        if service_id:
            instance = self.client.call(SERVICE_INSTANCE_QUERY, {
                "environmentId": self.p["environment_id"], "serviceId": service_id,
            }).get("serviceInstance") or {}
        self.converge_instance(service_id, instance)
        changed_vars = self.converge_variables(service_id)
        volume_id = self.converge_volume(service_id)
        domain = self.converge_domain(service_id)

        latest = instance.get("latestDeployment") or {}
        deployment = {"id": latest.get("id") or "", "status": latest.get("status") or ""}
        # A template deploys its own service; anything we changed on top needs one more deploy.
        needs_deploy = bool(self.changes) and not (template_created and self.changes == ["service created"])
        if self.p["deploy"] and needs_deploy:
            self.changes.append("deployed")
            if not self.check and service_id:
                deployment = self.deploy(service_id)
        return dict(
            changed=bool(self.changes),
            service_id=service_id,
            url=f"https://{domain}" if domain else "",
            domain=domain,
            volume_id=volume_id,
            changes=self.changes,
            variables_changed=changed_vars,
            deployment_id=deployment.get("id") or "",
            deployment_status=deployment.get("status") or "",
        )


def main() -> None:
    module = AnsibleModule(
        argument_spec=with_common_args(dict(
            project_id=dict(type="str", required=True),
            environment_id=dict(type="str", required=True),
            name=dict(type="str", required=True),
            image=dict(type="str"),
            template=dict(type="str"),
            start_command=dict(type="str", default=""),
            variables=dict(type="dict", default={}),
            secret_variables=dict(type="dict", default={}, no_log=True),
            volume_mount_path=dict(type="str", default=""),
            domain=dict(type="bool", default=False),
            target_port=dict(type="int"),
            deploy=dict(type="bool", default=True),
            deploy_timeout=dict(type="int", default=900),
            poll_interval=dict(type="int", default=5),
        )),
        mutually_exclusive=[("image", "template")],
        required_one_of=[("image", "template")],
        supports_check_mode=True,
    )
    params = module.params
    problems = validate(params)
    if problems:
        module.fail_json(msg="railway_service: " + "; ".join(problems))
    params["variables"] = {key: str(value) for key, value in params["variables"].items()}
    params["secret_variables"] = {key: str(value) for key, value in params["secret_variables"].items()}
    converger = Converger(client_from_params(params), params, module.check_mode)
    try:
        result = converger.run()
    except RailwayError as exc:
        module.fail_json(msg=f"railway_service {params['name']}: {exc}", changes=converger.changes)
    if module._diff:
        result["diff"] = dict(before=converger.diff_before, after=converger.diff_after)
    module.exit_json(**result)


def validate(params: dict[str, Any]) -> list[str]:
    """Argument checks the argument_spec cannot express."""
    problems = []
    if not params["name"].strip():
        problems.append("name must not be empty")
    if params["image"] is not None and (":" not in params["image"].rsplit("/", 1)[-1] and "@" not in params["image"]):
        problems.append(f"image {params['image']!r} must carry a pinned tag or digest (e.g. n8nio/n8n:1.123.4)")
    if params["image"] is not None and params["image"].endswith(":latest"):
        problems.append("image must not use the moving tag 'latest'; pin a version")
    if params["volume_mount_path"] and not params["volume_mount_path"].startswith("/"):
        problems.append("volume_mount_path must be an absolute path")
    if params["target_port"] is not None and not 1 <= params["target_port"] <= 65535:
        problems.append("target_port must be between 1 and 65535")
    if params["deploy_timeout"] < 1 or params["poll_interval"] < 1:
        problems.append("deploy_timeout and poll_interval must be positive")
    both = set(params["variables"]) & set(params["secret_variables"])
    if both:
        problems.append(f"variables set both plain and secret: {sorted(both)}")
    return problems


if __name__ == "__main__":
    main()
