# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""The address of a stack container, for the modules that talk to a service's API.

The APIs are never published on the host: a module running on the host reaches
the container on its network address. Looking it up inside the module saves the
separate docker_container_info round trip per run.
"""

from __future__ import annotations

import json
from typing import Any


def container_url(module, name: str, networks: list[str], port: int) -> str | None:
    """``http://<address>:<port>`` of container ``name`` on the first of ``networks`` it is on,
    else on any network (sorted by name); None when there is no such container."""
    docker = module.get_bin_path("docker", required=True)
    rc, out, err = module.run_command([docker, "container", "inspect", "--format",
                                       "{{json .NetworkSettings.Networks}}", name])
    if rc != 0:
        if "no such" in err.lower():
            return None
        module.fail_json(msg=f"docker container inspect {name}: {err.strip()}")
    attached = json.loads(out or "{}") or {}
    addresses = {net: (settings or {}).get("IPAddress") for net, settings in attached.items()}
    for net in [*networks, *sorted(addresses)]:
        if addresses.get(net):
            return f"http://{addresses[net]}:{port}"
    module.fail_json(msg=f"container {name} has no address on any network")
    return None  # not reached: fail_json exits


def api_url(module, networks: list[str], port: int, no_op: dict[str, Any]) -> str:
    """The API's base URL from the module's ``url`` or ``container`` option.

    A container that does not exist ends the module: in check mode as a no-op
    returning ``no_op`` (a first run's dry run, before Compose created it),
    otherwise as a failure.
    """
    params = module.params
    if not params["container"]:
        return params["url"]
    url = container_url(module, params["container"], networks, port)
    if url is None:
        if not module.check_mode:
            module.fail_json(msg=f"there is no container {params['container']}")
        module.exit_json(changed=False, **no_op)
    return url
