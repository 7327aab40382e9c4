#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Owner account, workflows and credentials of a running n8n, through its REST API."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: n8n_provision
short_description: Idempotently set up n8n's owner, import workflows and credentials over its REST API
version_added: 0.1.0
description:
  - Creates the owner account when n8n has none yet, then logs in as the owner.
  - n8n limits logins per client address (HTTP 429 after a few within minutes), so the owner's
    session is kept in O(session_path) and the next run resumes it (one C(GET /rest/login))
    instead of logging in again; a session n8n no longer accepts (expired, the password
    changed, another owner) is replaced by a new login. A login refused with HTTP 429 is
    retried after the wait n8n asks for (C(Retry-After)), two minutes at most.
  - Creates or updates credentials (n8n encrypts them with its key); their data
    is passed in memory and never written to disk on the host.
  - Then imports workflows (n8n export JSON, each with a stable C(id)) when they are
    missing or their file changed since the last import (a content hash is kept
    in O(state_path)), and activates the ones asked for, so webhooks register on
    the main process at once.
  - A node's credential reference is resolved BY NAME, because n8n gives credentials new ids on
    every instance. A reference that names a credential (and its type, the key it is under) gets
    the id of the credential of that name and type, so exported workflows work on another
    instance. A name n8n does not have (and O(credentials) does not create) fails, naming
    the workflow, the node and the credential.
  - Talks to the main process directly (its address on the stack network), not through Traefik;
    that address is O(url), or is found from O(container) and O(network) in the same call.
  - Waits up to O(wait_timeout) seconds for n8n's readiness (database connected and
    migrated) before the first API call.
options:
  url:
    description:
      - Base URL of n8n's main process, e.g. C(http://172.20.0.5:5678).
      - Exactly one of O(url) and O(container) is required.
    type: str
  container:
    description:
      - Name of the main process's container; its address on O(network) (port O(port)) is used.
      - When the container does not exist, nothing is done in check mode (a first run's
        dry run, before Compose created it) and the module fails otherwise.
    type: str
  network:
    description: The Docker network whose address of O(container) is used first (else any network it is on).
    type: str
    default: aistack
  port:
    description: n8n's port inside O(container).
    type: int
    default: 5678
  wait_timeout:
    description: Seconds to wait for C(/healthz/readiness) to answer 200; C(0) does not wait.
    type: int
    default: 0
  owner:
    description:
      - The owner account. Only its password is kept out of the output (no_log); the other fields
        are not secret, and a no_log name would be masked inside every value this module returns.
    type: dict
    required: true
    suboptions:
      email:
        description: The owner's e-mail (login).
        type: str
        required: true
      password:
        description: The owner's password.
        type: str
        required: true
      first_name:
        description: First name shown in n8n.
        type: str
        default: Owner
      last_name:
        description: Last name shown in n8n.
        type: str
        default: aistack
  workflows:
    description: Workflows to import, C({content, active}); C(content) is the exported JSON object.
    type: list
    elements: dict
    default: []
  credentials:
    description: Credentials, matched by name (n8n assigns their ids). Only their C(data) is no_log.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The credential's name in n8n.
        type: str
        required: true
      type:
        description: n8n's credential type, e.g. C(httpHeaderAuth), C(openAiApi).
        type: str
        required: true
      data:
        description: The credential's fields (secret).
        type: dict
        required: true
  state_path:
    description: Where the hashes of imported workflows and credentials are kept.
    type: path
    required: true
  session_path:
    description:
      - Where the owner's session cookie is kept between runs (a JSON file, mode 0600; its
        directory, when missing, is made 0700). It is a credential for as long as n8n accepts it (7 days by default),
        so keep it on the host's tmpfs (C(/run)), out of backups. Not given, every run logs in.
      - It is resumed only for the same O(owner) e-mail and password (the file holds a salted
        scrypt hash of them, never the password), so a wrong password still fails at the login.
      - Never written in check mode.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Only GET calls (and the login when an owner exists); reports what would be imported or created.
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Provision n8n
  aistack.hosting.n8n_provision:
    url: "http://{{ n8n_ip }}:5678"
    owner: {email: ops@example.com, password: "{{ vault_n8n_owner_password }}", first_name: Ops, last_name: Team}
    workflows: [{content: "{{ lookup('file', 'hello.json') | from_json }}", active: true}]
    state_path: /opt/aistack/n8n/provisioned.json
    session_path: /run/aistack/n8n-session.json
  no_log: true
"""

RETURN = r"""
url:
  description: The base URL the module talked to (none when O(container) does not exist).
  returned: always
  type: str
owner_created:
  description: Whether the owner account was created in this run.
  returned: always
  type: bool
imported:
  description: Workflow ids created or updated.
  returned: always
  type: list
  elements: str
activated:
  description: Workflow ids activated.
  returned: always
  type: list
  elements: str
credentials:
  description: Names of the credentials created or updated.
  returned: always
  type: list
  elements: str
"""

import hashlib
import json
import os
import time
import urllib.error
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aistack.hosting.plugins.module_utils.atomic import write_json_atomically
from ansible_collections.aistack.hosting.plugins.module_utils.container_address import api_url
from ansible_collections.aistack.hosting.plugins.module_utils.json_api import JsonApi

# n8n's answer to too many logins from one address; waited out up to this many seconds in all.
LOGIN_RATE_LIMIT_WAIT = 120


class HttpStatusError(RuntimeError):
    """n8n answered with an HTTP error status."""

    def __init__(self, message: str, code: int, retry_after: float | None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


# Fields of an exported workflow that the REST API accepts on create/update.
WORKFLOW_FIELDS = ("id", "name", "nodes", "connections", "settings", "staticData", "pinData", "meta")


class N8nClient:
    """Minimal cookie-authenticated client for n8n's internal REST API.

    n8n marks its auth cookie Secure (it is served over HTTPS by Traefik);
    talking to main over the private network in plain HTTP, the cookie is
    kept and sent by hand instead of through a cookie jar that would drop it.
    """

    def __init__(self, url: str) -> None:
        self.api = JsonApi(url, timeout=60)
        self.cookies: dict[str, str] = {}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            with self.api.open(method, path, body, headers) as response:
                for header in response.headers.get_all("Set-Cookie") or []:
                    name, _sep, rest = header.partition("=")
                    self.cookies[name.strip()] = rest.split(";", 1)[0]
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            try:
                retry_after = float(exc.headers.get("Retry-After", "")) if exc.headers else None
            except ValueError:
                retry_after = None
            raise HttpStatusError(f"{method} {path} -> HTTP {exc.code}: {detail}", exc.code, retry_after) from exc
        parsed = json.loads(payload) if payload else {}
        return parsed.get("data", parsed) if isinstance(parsed, dict) else parsed


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def load_state(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return {}


def save_state(path: str, state: dict) -> None:
    write_json_atomically(path, state, 0o600)


def owner_proof(owner: dict, salt: bytes) -> str:
    """A slow salted hash of the owner's login: the kept session is resumed only for the same
    e-mail and password (a wrong password in the inventory still fails at the login)."""
    login_id = f"{owner['email'].lower()}\n{owner['password']}".encode()
    return hashlib.scrypt(login_id, salt=salt, n=2 ** 14, r=8, p=1, maxmem=64 * 1024 * 1024).hex()


def load_session(path: str | None, owner: dict) -> dict[str, str]:
    """The cookies a previous run kept for this owner's login, or none."""
    if not path:
        return {}
    kept = load_state(path)
    cookies, proof = kept.get("cookies"), kept.get("owner") or {}
    try:
        same_owner = owner_proof(owner, bytes.fromhex(proof.get("salt", ""))) == proof.get("scrypt")
    except (TypeError, ValueError):
        same_owner = False
    return cookies if isinstance(cookies, dict) and same_owner else {}


def save_session(path: str | None, cookies: dict[str, str], owner: dict) -> None:
    if not path or not cookies:
        return
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    salt = os.urandom(16)
    write_json_atomically(path, {"cookies": cookies, "owner": {"salt": salt.hex(), "scrypt": owner_proof(owner, salt)}},
                          0o600)


def resume_session(client: N8nClient, owner: dict, cookies: dict[str, str]) -> bool:
    """Whether n8n still accepts the kept session as the owner's (one GET, no login)."""
    if not cookies:
        return False
    client.cookies = dict(cookies)
    try:
        user = client.call("GET", "/rest/login")
    except HttpStatusError as exc:
        if exc.code not in (401, 403):
            raise
        user = None
    if isinstance(user, dict) and str(user.get("email", "")).lower() == owner["email"].lower():
        return True
    client.cookies = {}
    return False


def login(client: N8nClient, owner: dict) -> None:
    """Log in as the owner, waiting out n8n's login rate limit (bounded)."""
    waited = 0.0
    while True:
        try:
            client.call("POST", "/rest/login", {"emailOrLdapLoginId": owner["email"], "password": owner["password"]})
            return
        except HttpStatusError as exc:
            if exc.code != 429:
                raise
            delay = min(max(exc.retry_after or 15.0, 1.0), LOGIN_RATE_LIMIT_WAIT - waited)
            if delay <= 0:
                raise RuntimeError(
                    f"{exc} (still refused after waiting {waited:.0f} s: n8n limits logins per client address; "
                    "something else is logging in from this host, or runs came too close together; "
                    "try again in a few minutes)") from exc
            time.sleep(delay)
            waited += delay


def ensure_owner(client: N8nClient, owner: dict, check_mode: bool, session: dict[str, str]) -> bool:
    """Create the owner if n8n still shows its setup screen; then resume the kept session or log in."""
    settings = client.call("GET", "/rest/settings")
    needs_setup = bool(settings.get("userManagement", {}).get("showSetupOnFirstLoad"))
    if needs_setup and not check_mode:
        client.call("POST", "/rest/owner/setup", {
            "email": owner["email"], "password": owner["password"],
            "firstName": owner.get("first_name") or "Owner", "lastName": owner.get("last_name") or "aistack",
        })
    if needs_setup and check_mode:
        return needs_setup
    if needs_setup or not resume_session(client, owner, session):
        login(client, owner)
    return needs_setup


def link_credentials(body: dict, available: dict[str, dict]) -> dict:
    """The workflow with each node's credential reference pointing at the id of the credential of that name.

    ``available`` maps credential names to ``{"id", "type"}`` (id None: created by this run's check mode).
    """
    nodes = []
    for node in body.get("nodes") or []:
        references = node.get("credentials") or {}
        linked = {}
        for kind, ref in references.items():
            ref = dict(ref or {})
            name = ref.get("name")
            known = available.get(name) if name else None
            if known is None or known.get("type") not in (None, kind):
                raise ValueError(
                    f"workflow {body.get('name', body.get('id'))!r}, node {node.get('name')!r}: credential "
                    f"{name!r} of type {kind} is neither in n8n nor in the credentials to create (n8n_credentials)")
            if known.get("id"):
                ref["id"] = known["id"]
            linked[kind] = ref
        nodes.append({**node, "credentials": linked} if references else node)
    return {**body, "nodes": nodes} if "nodes" in body else body


def sync_workflows(client: N8nClient, workflows: list, state: dict, check_mode: bool,
                   available: dict[str, dict]) -> tuple[list, list]:
    """Import missing or changed workflows; activate the ones asked for."""
    imported, activated = [], []
    known = state.setdefault("workflows", {})
    for item in workflows:
        content = item["content"]
        workflow_id = content.get("id")
        if not workflow_id:
            raise ValueError(f"workflow {content.get('name', '?')!r} has no id: export it from n8n or add a stable id")
        # The resolved ids are part of the hash: a credential recreated under a new id re-imports its workflows.
        body = link_credentials({key: content[key] for key in WORKFLOW_FIELDS if key in content}, available)
        wanted = digest([body, bool(item.get("active", True))])
        exists = client.call("GET", f"/rest/workflows/{workflow_id}/exists").get("exists", False)
        if exists and known.get(workflow_id) == wanted:
            continue
        imported.append(workflow_id)
        if check_mode:
            continue
        if exists:
            live = client.call("GET", f"/rest/workflows/{workflow_id}")
            saved = client.call("PATCH", f"/rest/workflows/{workflow_id}?forceSave=true",
                                {**body, "versionId": live.get("versionId")})
        else:
            saved = client.call("POST", "/rest/workflows", body)
        if item.get("active", True):
            client.call("POST", f"/rest/workflows/{workflow_id}/activate", {"versionId": saved.get("versionId")})
            activated.append(workflow_id)
        known[workflow_id] = wanted
    return imported, activated


def sync_credentials(client: N8nClient, credentials: list, state: dict, check_mode: bool) -> tuple[list, dict]:
    """Create or update credentials (matched by name) whose content changed since the last run.

    Returns the names changed and every credential n8n then has (name -> id and type), for the workflows.
    """
    changed = []
    known = state.setdefault("credentials", {})
    listed = client.call("GET", "/rest/credentials") or []
    existing = {c["name"]: c["id"] for c in listed}
    available = {c["name"]: {"id": c["id"], "type": c.get("type")} for c in listed}
    for cred in credentials:
        name = cred["name"]
        wanted = digest(cred)
        if name in existing and known.get(name) == wanted:
            continue
        changed.append(name)
        if check_mode:
            continue
        body = {"name": name, "type": cred["type"], "data": cred["data"]}
        if name in existing:
            client.call("PATCH", f"/rest/credentials/{existing[name]}", body)
        else:
            created = client.call("POST", "/rest/credentials", body) or {}
            available[name] = {"id": created.get("id"), "type": cred["type"]}
        known[name] = wanted
    # In check mode the ones that would be created are known by name (no id yet).
    for cred in credentials:
        available.setdefault(cred["name"], {"id": None, "type": cred["type"]})
    return changed, available


def wait_ready(url: str, timeout: int) -> None:
    """Poll /healthz/readiness until it answers 200 (n8n's database connected and migrated)."""
    api = JsonApi(url, timeout=10)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with api.open("GET", "/healthz/readiness"):
                return
        except (urllib.error.URLError, OSError) as exc:  # HTTPError (503) is a URLError
            if time.monotonic() >= deadline:
                raise RuntimeError(f"not ready after {timeout} s ({url}/healthz/readiness: {exc})") from exc
        time.sleep(1)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str"),
            container=dict(type="str"),
            network=dict(type="str", default="aistack"),
            port=dict(type="int", default=5678),
            wait_timeout=dict(type="int", default=0),
            # Only the secrets are no_log: Ansible masks every no_log value wherever it occurs in the
            # result, so a no_log last name "aistack" turned workflow id aistackE2eQueue1 into ********E2eQueue1.
            owner=dict(type="dict", required=True, options=dict(
                email=dict(type="str", required=True),
                password=dict(type="str", required=True, no_log=True),
                first_name=dict(type="str", default="Owner"),
                last_name=dict(type="str", default="aistack"),
            )),
            workflows=dict(type="list", elements="dict", default=[]),
            credentials=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                type=dict(type="str", required=True),
                data=dict(type="dict", required=True, no_log=True),
            )),
            state_path=dict(type="path", required=True),
            session_path=dict(type="path"),
        ),
        required_one_of=[("url", "container")],
        mutually_exclusive=[("url", "container")],
        supports_check_mode=True,
    )
    params = module.params
    owner = params["owner"]
    if not owner.get("email") or not owner.get("password"):
        module.fail_json(msg="n8n_provision: owner needs email and password")
    url = api_url(module, [params["network"]], params["port"],
                  no_op=dict(url=None, owner_created=False, imported=[], activated=[], credentials=[]))
    client = N8nClient(url)
    state = load_state(params["state_path"])
    session = load_session(params["session_path"], owner)
    try:
        if params["wait_timeout"] > 0:
            wait_ready(url, params["wait_timeout"])
        owner_created = ensure_owner(client, owner, module.check_mode, session)
        if owner_created and module.check_mode:
            imported = [w["content"].get("id") for w in params["workflows"]]
            activated, creds = [], [c.get("name") for c in params["credentials"]]
        else:
            # Credentials first: the workflows' references are resolved against them.
            creds, available = sync_credentials(client, params["credentials"], state, module.check_mode)
            imported, activated = sync_workflows(client, params["workflows"], state, module.check_mode, available)
    except (RuntimeError, ValueError, urllib.error.URLError) as exc:
        module.fail_json(msg=f"n8n_provision: {exc}")
    changed = owner_created or bool(imported) or bool(creds)
    if changed and not module.check_mode:
        save_state(params["state_path"], state)
    # The session is not a change of n8n: kept (or its refreshed cookie) without reporting one.
    if not module.check_mode and client.cookies != session:
        try:
            save_session(params["session_path"], client.cookies, owner)
        except OSError as exc:
            module.warn(f"n8n_provision: could not keep the session in {params['session_path']}: {exc}")
    module.exit_json(changed=changed, url=url, owner_created=owner_created, imported=imported,
                     activated=activated, credentials=creds)


if __name__ == "__main__":
    main()
