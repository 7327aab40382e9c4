"""n8n_workers' default: one queue worker per two CPUs of the host, 1 to 4."""

from __future__ import annotations

from conftest import ROOT, play_on_localhost

PLAY = """
- hosts: localhost
  gather_facts: false
  vars_files: ["{root}/roles/n8n/defaults/main.yml"]
  tasks:
    - name: Before the run has read the host's CPUs
      ansible.builtin.assert:
        that: n8n_workers == 1 and n8n_workers | type_debug == 'int'
    - name: With the CPUs this run read
      ansible.builtin.assert:
        that: n8n_workers == item.workers
        fail_msg: "{{{{ item.cpus }}}} CPUs gave {{{{ n8n_workers }}}} workers, not {{{{ item.workers }}}}"
      vars:
        __aistack_host_cpus: "{{{{ item.cpus }}}}"
      loop:
        - {{cpus: 1, workers: 1}}
        - {{cpus: 2, workers: 1}}
        - {{cpus: 4, workers: 2}}
        - {{cpus: 6, workers: 3}}
        - {{cpus: 64, workers: 4}}
"""


def test_one_worker_per_two_cpus_between_one_and_four(tmp_path):
    (tmp_path / "play.yml").write_text(PLAY.format(root=ROOT))
    play_on_localhost(tmp_path)
