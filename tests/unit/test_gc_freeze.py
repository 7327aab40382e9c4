"""plugins/callback/gc_freeze.py: task workers fork from a frozen controller heap.

The play's own action plugin runs in the forked worker (as every task does) and
reports how many objects the worker inherited frozen: with the collection's
ansible.cfg (which enables the callback) nearly the whole controller heap, without
it none. The callback's own bookkeeping (the periodic full collection, the final
unfreeze) is checked on the class.
"""
from __future__ import annotations

import gc
import json
import textwrap

from conftest import play_on_localhost

from ansible_collections.aistack.hosting.plugins.callback.gc_freeze import CallbackModule

ACTION = '''
import gc
from ansible.plugins.action import ActionBase

class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        return {"changed": False, "frozen": gc.get_freeze_count()}
'''

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Count the objects this worker inherited frozen
      freeze_count:
      register: counted
    - name: Keep it for the test
      ansible.builtin.copy:
        content: "{{ counted.frozen }}"
        dest: "{{ playbook_dir }}/frozen.txt"
        mode: "0600"
"""


def frozen_in_worker(tmp_path, **env) -> int:
    (tmp_path / "action_plugins").mkdir()
    (tmp_path / "action_plugins" / "freeze_count.py").write_text(textwrap.dedent(ACTION))
    (tmp_path / "play.yml").write_text(PLAY)
    play_on_localhost(tmp_path, **env)
    return json.loads((tmp_path / "frozen.txt").read_text())


def test_workers_fork_from_a_frozen_heap_with_the_collections_ansible_cfg(tmp_path):
    assert frozen_in_worker(tmp_path) > 10000


def test_without_the_callback_nothing_is_frozen(tmp_path):
    assert frozen_in_worker(tmp_path, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks") == 0


def test_a_full_collection_every_collect_every_tasks_and_unfrozen_at_the_end(monkeypatch):
    callback = CallbackModule()
    monkeypatch.setattr(callback, "get_option", {"collect_every": 3}.__getitem__)
    generations = []

    def seen(phase, info):
        if phase == "start":
            generations.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        for _ in range(2):
            callback.v2_playbook_on_task_start(None, False)
        assert gc.get_freeze_count() > 0
        assert 2 not in generations
        callback.v2_playbook_on_handler_task_start(None)  # the third task: unfreeze, collect, freeze
        assert 2 in generations and gc.get_freeze_count() > 0
        callback.v2_playbook_on_stats(None)
        assert gc.get_freeze_count() == 0
    finally:
        gc.callbacks.remove(seen)
        gc.unfreeze()
