"""site.yml imports every layout whose group has hosts: an inventory for one layout
loads and runs only that one.

The split_railway layout's first play targets `localhost` (it talks to
Railway's API from the control node), so unlike the other layouts it would
match any inventory: site.yml must not load it without `railway_split_hosts`
(and the play itself ends at once without them, for direct use), without
asking for a Railway token.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def site(tmp_path, inventory_yaml: str, *args: str) -> str:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(inventory_yaml)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(ansible_playbook), *args, "-i", str(inventory), "site.yml", "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


def test_site_without_railway_hosts_does_not_reach_railway(tmp_path):
    output = site(tmp_path, "all:\n  children:\n    gpu_hosts: {}\n", "--check")
    assert "N8n on Railway" not in output and "railway_n8n" not in output, output


def test_site_loads_only_the_layouts_the_inventory_has(tmp_path):
    plays = ("GPU host layout", "Single container layout", "N8n on Railway", "Assistant layout", "Multi-host layout")
    host = " {h: {ansible_connection: local}}"
    output = site(tmp_path, "all:\n  children:\n    gpu_hosts:\n      hosts:" + host + "\n", "--list-tasks")
    assert [play in output for play in plays] == [True, False, False, False, False], output
    both = "all:\n  children:\n    gpu_hosts:\n      hosts:" + host + "\n    multi_hosts:\n      hosts: {m: {ansible_connection: local}}\n"
    output = site(tmp_path, both, "--list-tasks")
    assert [play in output for play in plays] == [True, False, False, False, True], output


def test_upgrade_applies_the_gpu_host_service_roles_in_layout_order():
    import yaml

    layout = yaml.safe_load((ROOT / "playbooks" / "gpu_host.yml").read_text())[0]["roles"]
    names = [entry["role"].removeprefix("aistack.hosting.") for entry in layout]
    upgrade = yaml.safe_load((ROOT / "playbooks" / "upgrade.yml").read_text())[0]["vars"]["__upgrade_roles"]
    host_roles = {"docker", "firewall", "ssh_hardening", "unattended_upgrades", "nvidia_toolkit", "backup"}
    assert upgrade == [name for name in names if name not in host_roles]
