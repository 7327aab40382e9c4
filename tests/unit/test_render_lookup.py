"""aistack.hosting.render renders exactly what ansible.builtin.template's lookup renders.

Both lookups run in one real ansible-playbook (localhost, no host access) from a
role of the test's own, on templates that use what the roles' templates use: a
template of another role, given by path, importing a library beside it with
context (compose_project.yml.j2 and compose_lib.j2), one from the role's own templates/,
ansible_managed, variables that are templates themselves, task vars, set_fact
facts, macros with keyword arguments, and a template that changes only its own
objects. The collection is imported by name (ansible_collections.aistack.hosting.plugins)
so it runs under every tested ansible-core.
"""

from __future__ import annotations

import json

import pytest
from conftest import play_on_localhost

PLUGIN = "ansible_collections.aistack.hosting.plugins.lookup.render"

LIBRARY = """\
{% macro service(name, ports=[]) %}
  {{ name }}:
    image: {{ image }}
{% for port in ports %}
    - "{{ port }}"
{% endfor %}
{% for key, value in kwargs | dictsort %}
    {{ key }}: {{ value | to_json }}
{% endfor %}
{% endmacro %}
"""

PROJECT = """\
# {{ ansible_managed }}
{% import 'lib.j2' as lib with context %}
services:
{{ lib.service('web', ports=[8080, 8443], restart='always', env=derived) }}
{% set seen = [] %}
{% for item in items %}{% set _ = seen.append(item * 2) %}{% endfor %}
doubled: {{ seen | to_json }}
fact: {{ rendered_before | default('none') }}
local: {{ task_local }}
trailing: {{ 'x' }}

"""

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  vars:
    image: "{{ repository }}:{{ tag }}"
    repository: registry.example/app
    tag: "1.2"
    derived: "{{ {'A': tag, 'B': items | length} }}"
    items: [1, 2, 3]
  roles:
    - consumer
"""

TASKS = """\
- name: Set a fact first (the roles' render tasks run after many)
  ansible.builtin.set_fact:
    rendered_before: "{{ query('ansible.builtin.template', 'own.j2') | length }}"
  vars:
    task_local: first

- name: Render with both
  ansible.builtin.set_fact:
    builtin: "{{ query('ansible.builtin.template', project, 'own.j2') }}"
    fast: "{{ query('aistack.hosting.render', project, 'own.j2') }}"
  vars:
    task_local: only in this task
    project: "{{ role_path }}/../library/templates/project.yml.j2"

- name: Keep them for the test
  ansible.builtin.copy:
    content: "{{ {'builtin': builtin, 'fast': fast} | to_json }}"
    dest: "{{ playbook_dir }}/rendered.json"
    mode: "0600"
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("render")
    (base / "roles" / "library" / "templates").mkdir(parents=True)
    (base / "roles" / "library" / "templates" / "lib.j2").write_text(LIBRARY)
    consumer = base / "roles" / "consumer"
    (consumer / "templates").mkdir(parents=True)
    (consumer / "tasks").mkdir()
    # As compose_project.yml.j2: a template of another role (by path), importing its neighbour.
    (base / "roles" / "library" / "templates" / "project.yml.j2").write_text(PROJECT)
    (consumer / "templates" / "own.j2").write_text("{{ image }} {{ task_local }}\n")
    (consumer / "tasks" / "main.yml").write_text(TASKS)
    (base / "play.yml").write_text(PLAYBOOK)
    play_on_localhost(base, ANSIBLE_ROLES_PATH=str(base / "roles"))
    return json.loads((base / "rendered.json").read_text())


def test_the_plugin_is_the_collections():
    __import__(PLUGIN)


def test_renders_what_the_builtin_lookup_renders(rendered):
    assert rendered["fast"] == rendered["builtin"]


def test_the_template_saw_every_kind_of_variable(rendered):
    project = rendered["fast"][0]
    assert project.startswith("# Ansible managed\n"), project
    assert "image: registry.example/app:1.2" in project
    assert '    - "8443"' in project and 'restart: "always"' in project
    assert 'env: {"A": "1.2", "B": 3}' in project
    assert "doubled: [2, 4, 6]" in project
    assert "fact: 1" in project and "local: only in this task" in project
    assert rendered["fast"][1] == "registry.example/app:1.2 only in this task\n"
    assert project.endswith("trailing: x\n\n"), repr(project[-30:])
