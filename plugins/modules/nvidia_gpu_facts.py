#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Count and name a host's NVIDIA GPUs from the PCI bus and, when the driver works, nvidia-smi."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_gpu_facts
short_description: NVIDIA GPU facts from the PCI bus and nvidia-smi
version_added: 0.1.0
description:
  - Finds NVIDIA GPUs on the PCI bus (C(/sys/bus/pci/devices/*) with vendor
    C(0x10de) and a display-controller class C(0x03xxxx)); the audio, USB and
    bridge functions of a graphics card are not GPUs and are not counted.
  - When the driver is installed, asks C(nvidia-smi --query-gpu) for each GPU's
    index, name, UUID and the driver version. The PCI scan works without a driver,
    so a host with a GPU but no (working) driver is recognised as such.
  - Also reports whether the toolkit's runtime is installed and which runtimes Docker's
    C(daemon.json) declares, so one call tells whether a container asking for GPUs would get them.
  - Read-only; runs the same in check mode.
options:
  sysfs_root:
    description: Where sysfs is mounted (tests point it at a fake tree).
    type: path
    default: /sys
  nvidia_smi:
    description: Name (looked up on PATH) or path of C(nvidia-smi).
    type: str
    default: nvidia-smi
  pci_ids:
    description:
      - PCI ID database used to name GPUs when nvidia-smi cannot
        (Debian's C(pci.ids) package); missing is fine.
    type: path
    default: /usr/share/misc/pci.ids
  runtime_path:
    description: The NVIDIA container runtime's executable, present once the toolkit is installed.
    type: path
    default: /usr/bin/nvidia-container-runtime
  daemon_json:
    description: Docker's daemon configuration, whose C(runtimes) are reported.
    type: path
    default: /etc/docker/daemon.json
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only (runs nvidia-smi and reads files).
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The GPU count comes from the PCI bus; model names come from nvidia-smi when it
    answers, else from the PCI ID database, else the PCI device ID.
author:
  - aistack.hosting contributors (@aistack-hosting)
"""

EXAMPLES = r"""
- name: Look for NVIDIA GPUs
  aistack.hosting.nvidia_gpu_facts:
  register: __gpus

- name: Report them
  ansible.builtin.debug:
    msg: "{{ ansible_facts.nvidia_toolkit_gpu_count }} GPU(s): {{ ansible_facts.nvidia_toolkit_gpu_models }}"
"""

RETURN = r"""
ansible_facts:
  description: The GPU facts.
  returned: always
  type: complex
  contains:
    nvidia_toolkit_gpu_count:
      description: Number of NVIDIA GPUs on the PCI bus (nvidia-smi's count when no PCI bus is visible).
      type: int
      sample: 2
    nvidia_toolkit_gpu_models:
      description: One model name per GPU, in nvidia-smi index order (else PCI address order).
      type: list
      elements: str
      sample: ["NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-40GB"]
    nvidia_toolkit_gpus:
      description:
        - One entry per GPU with C(pci_address), C(device_id), C(model), and from nvidia-smi
          C(index) and C(uuid) (empty strings without a working driver).
      type: list
      elements: dict
    nvidia_toolkit_driver_present:
      description: Whether nvidia-smi answered, i.e. the driver is installed and loaded.
      type: bool
    nvidia_toolkit_driver_version:
      description: The driver version nvidia-smi reports; empty without a working driver.
      type: str
      sample: "550.163.01"
driver_error:
  description: Why nvidia-smi gave no answer (not found, or its error output); empty when it answered.
  returned: always
  type: str
runtime_installed:
  description: Whether O(runtime_path) is an executable file.
  returned: always
  type: bool
docker_runtimes:
  description: The names under C(runtimes) in O(daemon_json), sorted; empty when it is missing or not valid JSON.
  returned: always
  type: list
  elements: str
  sample: [nvidia]
"""

import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule

NVIDIA_VENDOR = "0x10de"
DISPLAY_CLASS_PREFIX = "0x03"  # PCI base class 03: VGA-compatible, XGA, 3D controller, other display
SMI_FIELDS = ("index", "name", "uuid", "driver_version")


def read_sysfs(path: str) -> str:
    """A sysfs attribute's value, lower-cased; '' when it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip().lower()
    except OSError:
        return ""


def pci_gpus(sysfs_root: str) -> list[dict[str, str]]:
    """NVIDIA display controllers on the PCI bus, sorted by PCI address."""
    gpus = []
    for device in sorted(glob.glob(os.path.join(sysfs_root, "bus", "pci", "devices", "*"))):
        if read_sysfs(os.path.join(device, "vendor")) != NVIDIA_VENDOR:
            continue
        if not read_sysfs(os.path.join(device, "class")).startswith(DISPLAY_CLASS_PREFIX):
            continue
        gpus.append({"pci_address": os.path.basename(device),
                     "device_id": read_sysfs(os.path.join(device, "device"))})
    return gpus


def pci_names(pci_ids: str) -> dict[str, str]:
    """NVIDIA device IDs (``0x2204``) to names from a pci.ids database; empty when unreadable."""
    names: dict[str, str] = {}
    try:
        with open(pci_ids, encoding="utf-8", errors="replace") as handle:
            in_nvidia = False
            for line in handle:
                if not line.strip() or line.startswith("#"):
                    continue
                if not line[0].isspace():
                    in_nvidia = line.lower().startswith("10de ")
                    continue
                if in_nvidia and line.startswith("\t") and not line.startswith("\t\t"):
                    device_id, _sep, name = line.strip().partition(" ")
                    names["0x" + device_id.lower()] = name.strip()
    except OSError:
        return {}
    return names


def parse_smi(output: str) -> list[dict[str, str]]:
    """Rows of ``nvidia-smi --query-gpu=index,name,uuid,driver_version --format=csv,noheader``."""
    rows = []
    for line in output.splitlines():
        values = [value.strip() for value in line.split(",")]
        if len(values) != len(SMI_FIELDS) or not values[0].isdigit():
            continue
        rows.append(dict(zip(SMI_FIELDS, values)))
    return sorted(rows, key=lambda row: int(row["index"]))


def query_smi(module: AnsibleModule, nvidia_smi: str) -> tuple[list[dict[str, str]], str]:
    """(GPU rows, error) from nvidia-smi; rows are empty and error says why when it cannot answer."""
    path = nvidia_smi if os.path.sep in nvidia_smi else module.get_bin_path(nvidia_smi)
    if not path or not os.access(path, os.X_OK):
        return [], f"{nvidia_smi} not found: the NVIDIA driver's utilities are not installed"
    rc, out, err = module.run_command(
        [path, "--query-gpu=" + ",".join(SMI_FIELDS), "--format=csv,noheader"])
    if rc != 0:
        return [], f"{path} failed (rc={rc}): {(err or out).strip()}"
    rows = parse_smi(out)
    if not rows:
        return [], f"{path} listed no GPUs: {(out or err).strip()}"
    return rows, ""


def gpu_facts(pci: list[dict[str, str]], smi: list[dict[str, str]], names: dict[str, str]) -> dict:
    """Merge the PCI scan and nvidia-smi's rows into the facts."""
    count = len(pci) or len(smi)
    gpus = []
    for position in range(count):
        device = pci[position] if position < len(pci) else {"pci_address": "", "device_id": ""}
        row = smi[position] if position < len(smi) else {}
        model = row.get("name") or names.get(device["device_id"]) or f"NVIDIA device {device['device_id'] or 'unknown'}"
        gpus.append({"pci_address": device["pci_address"], "device_id": device["device_id"],
                     "model": model, "index": row.get("index", ""), "uuid": row.get("uuid", "")})
    return {
        "nvidia_toolkit_gpu_count": count,
        "nvidia_toolkit_gpu_models": [gpu["model"] for gpu in gpus],
        "nvidia_toolkit_gpus": gpus,
        "nvidia_toolkit_driver_present": bool(smi),
        "nvidia_toolkit_driver_version": smi[0]["driver_version"] if smi else "",
    }


def docker_runtimes(daemon_json: str) -> list[str]:
    """The runtimes Docker's daemon.json declares; [] when it is missing or not a JSON object."""
    try:
        with open(daemon_json, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return []
    runtimes = config.get("runtimes") if isinstance(config, dict) else None
    return sorted(runtimes) if isinstance(runtimes, dict) else []


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            sysfs_root=dict(type="path", default="/sys"),
            nvidia_smi=dict(type="str", default="nvidia-smi"),
            pci_ids=dict(type="path", default="/usr/share/misc/pci.ids"),
            runtime_path=dict(type="path", default="/usr/bin/nvidia-container-runtime"),
            daemon_json=dict(type="path", default="/etc/docker/daemon.json"),
        ),
        supports_check_mode=True,
    )
    pci = pci_gpus(module.params["sysfs_root"])
    smi, error = query_smi(module, module.params["nvidia_smi"])
    names = pci_names(module.params["pci_ids"]) if pci and not smi else {}
    runtime = module.params["runtime_path"]
    module.exit_json(changed=False, ansible_facts=gpu_facts(pci, smi, names), driver_error=error,
                     runtime_installed=os.path.isfile(runtime) and os.access(runtime, os.X_OK),
                     docker_runtimes=docker_runtimes(module.params["daemon_json"]))


if __name__ == "__main__":
    main()
