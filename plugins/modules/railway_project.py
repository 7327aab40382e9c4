#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Find or create a Railway project and one of its environments, by exact name."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: railway_project
short_description: Find or create a Railway project and environment by name
version_added: 0.1.0
description:
  - Looks the project up by its exact name among the projects the token can see
    (optionally within one workspace) and creates it when there is none.
  - Railway does not keep project names unique. When two or more projects carry
    the name, the module fails and lists their ids instead of picking one.
  - Then finds the environment by exact name in that project and creates it when
    missing (a new project comes with C(production)).
  - Talks to Railway's public GraphQL API; the token is only sent in the
    C(Authorization) header and never returned or logged.
  - Never deletes anything.
options:
  name:
    description: Exact project name.
    type: str
    required: true
  workspace_id:
    description:
      - Workspace to look in and create the project in. Needed to create a project
        when the account belongs to more than one workspace.
    type: str
  description:
    description: Description given to a project created by this module (an existing one is left as is).
    type: str
    default: ""
  environment:
    description: Exact name of the environment to find or create.
    type: str
    default: production
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - aistack.hosting.railway
attributes:
  check_mode:
    support: full
    details: Only queries are sent; mutations are reported as would-change.
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - HTTP 429 responses are retried after their C(Retry-After) delay, a bounded number of times.
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Find or create the n8n project on Railway
  aistack.hosting.railway_project:
    name: aistack-n8n
    environment: production
    railway_token: "{{ vault_railway_token }}"
  register: __railway_project
"""

RETURN = r"""
project_id:
  description: Id of the project (null in check mode when it would be created).
  returned: always
  type: str
project_name:
  description: Its name.
  returned: always
  type: str
environment_id:
  description: Id of the environment (null in check mode when it would be created).
  returned: always
  type: str
environment_name:
  description: Its name.
  returned: always
  type: str
created:
  description: What was (or, in check mode, would be) created, among C(project) and C(environment).
  returned: always
  type: list
  elements: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.aistack.hosting.plugins.module_utils.railway import (
    ENVIRONMENT_CREATE,
    PROJECT_CREATE,
    PROJECT_ENVIRONMENTS_QUERY,
    PROJECTS_QUERY,
    RailwayClient,
    RailwayError,
    client_from_params,
    exactly_one,
    with_common_args,
)


def ensure_project(client: RailwayClient, params: dict[str, Any], check_mode: bool) -> tuple[dict | None, bool]:
    """(project node or None in check mode, created?)"""
    scope = {"workspaceId": params["workspace_id"]}
    projects = list(client.paginate(PROJECTS_QUERY, scope, ["projects"]))
    where = f"workspace {params['workspace_id']}" if params["workspace_id"] else "the projects this token can see"
    project = exactly_one(projects, "project", params["name"], where)
    if project:
        return project, False
    if check_mode:
        return None, True
    wanted: dict[str, Any] = {"name": params["name"], "description": params["description"]}
    if params["workspace_id"]:
        wanted["workspaceId"] = params["workspace_id"]
    return client.mutate(PROJECT_CREATE, {"input": wanted}, "projectCreate"), True


def ensure_environment(client: RailwayClient, project_id: str, name: str, check_mode: bool) -> tuple[dict | None, bool]:
    """(environment node or None in check mode, created?)"""
    environments = list(client.paginate(PROJECT_ENVIRONMENTS_QUERY, {"id": project_id}, ["project", "environments"]))
    environment = exactly_one(environments, "environment", name, f"project {project_id}")
    if environment:
        return environment, False
    if check_mode:
        return None, True
    created = client.mutate(ENVIRONMENT_CREATE, {"input": {"projectId": project_id, "name": name}}, "environmentCreate")
    return created, True


def main() -> None:
    module = AnsibleModule(
        argument_spec=with_common_args(dict(
            name=dict(type="str", required=True),
            workspace_id=dict(type="str"),
            description=dict(type="str", default=""),
            environment=dict(type="str", default="production"),
        )),
        supports_check_mode=True,
    )
    params = module.params
    for option in ("name", "environment"):
        if not params[option].strip():
            module.fail_json(msg=f"railway_project: {option} must not be empty")
    client = client_from_params(params)
    created: list[str] = []
    environment: dict | None = None
    try:
        project, project_created = ensure_project(client, params, module.check_mode)
        if project_created:
            created.append("project")
        if project is None:  # check mode, project to be created: its environment would be too
            created.append("environment")
        else:
            environment, environment_created = ensure_environment(
                client, project["id"], params["environment"], module.check_mode)
            if environment_created:
                created.append("environment")
    except RailwayError as exc:
        module.fail_json(msg=f"railway_project: {exc}", created=created)

    result = dict(
        changed=bool(created),
        project_id=project["id"] if project else None,
        project_name=params["name"],
        environment_id=environment["id"] if environment else None,
        environment_name=params["environment"],
        created=created,
    )
    if module._diff:
        result["diff"] = dict(
            before={"project": None if "project" in created else params["name"],
                    "environment": None if "environment" in created else params["environment"]},
            after={"project": params["name"], "environment": params["environment"]},
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
