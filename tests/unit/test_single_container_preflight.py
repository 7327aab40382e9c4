"""single_container's own bad-input cases (owner account, base image), run like
tests/unit/test_role_bad_input.py: the real role in check mode against the
local machine must fail in argument validation or preflight, change nothing,
and name the variable.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - aistack.hosting.single_container
"""
OWNER = {"single_container_owner_email": "owner@example.com"}

CASES = {
    "owner email missing": ({}, r"single_container_owner_email must be the e-mail of n8n's owner account"),
    "owner email not an address": ({"single_container_owner_email": "owner"}, r"single_container_owner_email must be"),
    "owner password n8n would refuse": (
        {**OWNER, "single_container_owner_password": "alllowercase1"},
        r"single_container_owner_password \(Vault\) must be empty \(generated once\) or 8-64 characters",
    ),
    "base image without a tag": ({**OWNER, "single_container_base_image": "python"}, r"single_container_base_image \(python\) must carry a pinned tag"),
    "base image latest": ({**OWNER, "single_container_base_image": "python:latest"}, r"single_container_base_image \(python:latest\) must carry"),
    "agent OS packages not a list": ({**OWNER, "single_container_agent_os_packages": {"ffmpeg": 1}}, r"single_container_agent_os_packages.*list"),
}


@pytest.mark.parametrize("extra_vars,message", CASES.values(), ids=CASES.keys())
def test_bad_input_fails_early_and_names_the_variable(tmp_path, extra_vars, message):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(ansible_playbook), "--check", "-i", "localhost,", str(playbook), "-e", json.dumps(extra_vars),
         "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert re.search(message, output, re.S), output
    recap = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+).*?failed=(\d+)", output)
    assert recap and recap.group(1) == "0" and recap.group(2) == "1", output
    failed_task = re.findall(r"TASK \[([^\]]+)\]", output)[-1]
    assert "Validating arguments" in failed_task or "Check " in failed_task, failed_task
