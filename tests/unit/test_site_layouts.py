"""site.yml imports every layout: an inventory for one layout runs only that one.

The split_railway layout's first play targets `localhost` (it talks to
Railway's API from the control node), so unlike the other layouts it would
match any inventory. It must end at once when the inventory has no
`railway_split_hosts`, without asking for a Railway token.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_site_without_railway_hosts_does_not_reach_railway(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    gpu_hosts: {}\n")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(ansible_playbook), "--check", "-i", str(inventory), "site.yml", "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Skip unless the inventory has hosts in railway_split_hosts" in output, output
    assert "railway_n8n" not in output.replace("railway_split_hosts", ""), output


def test_upgrade_applies_the_gpu_host_service_roles_in_layout_order():
    import yaml

    layout = yaml.safe_load((ROOT / "playbooks" / "gpu_host.yml").read_text())[0]["roles"]
    names = [entry["role"].removeprefix("aistack.hosting.") for entry in layout]
    upgrade = yaml.safe_load((ROOT / "playbooks" / "upgrade.yml").read_text())[0]["vars"]["__upgrade_roles"]
    host_roles = {"docker", "firewall", "ssh_hardening", "unattended_upgrades", "nvidia_toolkit", "backup"}
    assert upgrade == [name for name in names if name not in host_roles]
