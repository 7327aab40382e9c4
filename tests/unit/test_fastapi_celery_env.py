"""The environment the fastapi_celery role hands the app (roles/fastapi_celery/vars/main.yml).

Rendered by Ansible itself from the role's defaults and vars, with stand-in
secrets: seed 002's app reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
S3_BUCKET_NAME and a postgresql+psycopg:// DATABASE_URL, and gets them without
fastapi_celery_env_extra; the sample app's S3_* names stay.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "fastapi_celery"
PLAYBOOK = f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    __fastapi_celery_secrets: {{secrets: {{postgres_user_app: "p@ss/word", redis_password: redispw}}}}
  tasks:
    # The stack contract (a dependency of the role): the consumers' TLS settings read it.
    - ansible.builtin.include_vars: {ROOT / "roles" / "common" / "defaults" / "main.yml"}
    - ansible.builtin.include_vars: {ROOT / "roles" / "common" / "vars" / "main.yml"}
    - ansible.builtin.include_vars: {ROLE / "defaults" / "main.yml"}
    - ansible.builtin.include_vars: {ROLE / "vars" / "main.yml"}
    - ansible.builtin.include_vars: {{file: "{{{{ overrides }}}}"}}
    - ansible.builtin.copy:
        content: "{{{{ {{'env': __fastapi_celery_env, 'workers': fastapi_celery_workers}} | to_json }}}}"
        dest: "{{{{ result }}}}"
"""


def render(tmp_path: Path, overrides: dict) -> dict:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    (tmp_path / "overrides.json").write_text(json.dumps(overrides))
    result = tmp_path / "result.json"
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook),
         "-e", json.dumps({"overrides": str(tmp_path / "overrides.json"), "result": str(result),
                           "ansible_python_interpreter": sys.executable})],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(result.read_text())


S3 = {"fastapi_celery_s3_endpoint": "https://storage.example.net", "fastapi_celery_s3_bucket": "renders",
      "fastapi_celery_s3_access_key": "AKIDEXAMPLE", "fastapi_celery_s3_secret_key": "s3cr3t",
      "fastapi_celery_s3_region": "ru-1"}


def test_defaults_match_seed_002(tmp_path):
    rendered = render(tmp_path, {})
    env = rendered["env"]
    assert env["DATABASE_URL"] == "postgresql+psycopg://app:p%40ss%2Fword@postgres:5432/app"
    assert not any(name.startswith(("AWS_", "S3_")) for name in env), "S3 is off until all four are set"
    assert {w["name"]: w["concurrency"] for w in rendered["workers"]} == {"gpu": 1, "render": 1}


def test_s3_under_both_naming_styles_and_the_url_scheme_option(tmp_path):
    env = render(tmp_path, {**S3, "fastapi_celery_database_url_scheme": "postgresql"})["env"]
    assert {name: env[name] for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                         "AWS_REGION_NAME", "AWS_DEFAULT_REGION", "S3_BUCKET_NAME")} == {
        "AWS_ENDPOINT_URL": "https://storage.example.net", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_REGION_NAME": "ru-1", "AWS_DEFAULT_REGION": "ru-1",
        "S3_BUCKET_NAME": "renders"}
    assert {name: env[name] for name in ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID",
                                         "S3_SECRET_ACCESS_KEY", "S3_REGION")} == {
        "S3_ENDPOINT_URL": "https://storage.example.net", "S3_BUCKET": "renders", "S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "S3_SECRET_ACCESS_KEY": "s3cr3t", "S3_REGION": "ru-1"}
    assert env["DATABASE_URL"] == "postgresql://app:p%40ss%2Fword@postgres:5432/app"


def test_env_extra_still_wins(tmp_path):
    env = render(tmp_path, {**S3, "fastapi_celery_env_extra": {"S3_BUCKET_NAME": "other"}})["env"]
    assert env["S3_BUCKET_NAME"] == "other" and env["S3_BUCKET"] == "renders"


def test_remote_data_services_over_tls_are_verified_against_the_private_ca(tmp_path):
    env = render(tmp_path, {"aistack_data_tls": True, "aistack_secrets_host": "data-1",
                            "aistack_remote_services": {"postgres": "10.0.0.2", "redis": "10.0.0.2"}})["env"]
    ca = "/etc/aistack-ca/ca.crt"
    assert env["DATABASE_URL"] == f"postgresql+psycopg://app:p%40ss%2Fword@postgres:5432/app?sslmode=verify-full&sslrootcert={ca}"
    assert env["CELERY_BROKER_URL"] == f"rediss://:redispw@redis:6379/1?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    assert env["CELERY_RESULT_BACKEND"] == env["CELERY_BROKER_URL"]
