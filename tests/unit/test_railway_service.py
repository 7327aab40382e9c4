"""railway_service: image/template service, batched variables, volume, domain, one deploy (FAKE Railway API)."""

from __future__ import annotations

import pytest
from railway_fake import api, fake, sleeps  # noqa: F401  (fixtures)

from ansible_collections.aistack.hosting.plugins.modules import railway_service

IMAGE = "n8nio/n8n:1.123.4"
SECRET = "enc-key-that-must-never-show-0123456789"


@pytest.fixture()
def project(fake):
    return fake.add_project("stack")


@pytest.fixture()
def n8n_args(api, project):
    return {
        **api,
        "project_id": project["id"],
        "environment_id": project["environments"][0]["id"],
        "name": "n8n",
        "image": IMAGE,
        "variables": {"DB_TYPE": "postgresdb", "DB_POSTGRESDB_HOST": "${{Postgres.PGHOST}}",
                      "N8N_PORT": 5678, "WEBHOOK_URL": "https://${{RAILWAY_PUBLIC_DOMAIN}}/"},
        "secret_variables": {"N8N_ENCRYPTION_KEY": SECRET},
        "volume_mount_path": "/home/node/.n8n",
        "domain": True,
        "target_port": 5678,
    }


def mutation_calls(fake, field):
    return [r for r in fake.requests if r["kind"] == "mutation" and r["field"] == field]


def test_create_then_rerun_is_unchanged(run_module, fake, n8n_args, project):
    first = run_module(railway_service, n8n_args)
    assert not first["failed"], first
    assert first["changed"] and first["changes"] == ["service created", "image", "variables", "volume", "domain",
                                                      "deployed"]
    assert first["domain"] == "n8n-production.up.railway.app"
    assert first["url"] == "https://n8n-production.up.railway.app"
    assert first["deployment_status"] == "SUCCESS" and first["volume_id"]
    env, service = project["environments"][0]["id"], first["service_id"]
    assert fake.instances[(env, service)]["source"] == {"image": IMAGE}
    assert fake.variables[(env, service)]["N8N_PORT"] == "5678"
    assert fake.variables[(env, service)]["DB_POSTGRESDB_HOST"] == "${{Postgres.PGHOST}}"

    second = run_module(railway_service, n8n_args)
    assert not second["changed"] and second["changes"] == [] and second["variables_changed"] == []
    assert second["url"] == first["url"] and second["service_id"] == service
    assert second["volume_id"] == first["volume_id"] and second["deployment_status"] == "SUCCESS"
    assert fake.mutations.count("serviceInstanceDeployV2") == 1
    assert fake.mutations.count("serviceCreate") == 1


def test_variables_batched_with_skip_deploys_and_one_deploy(run_module, fake, n8n_args):
    run_module(railway_service, n8n_args)
    upserts = mutation_calls(fake, "variableCollectionUpsert")
    assert len(upserts) == 1
    sent = upserts[0]["variables"]["input"]
    assert sent["skipDeploys"] is True and len(sent["variables"]) == 5
    # every mutation comes before the single deploy, which is last
    assert fake.mutations[-1] == "serviceInstanceDeployV2" and fake.mutations.count("serviceInstanceDeployV2") == 1


def test_only_changed_variables_are_sent(run_module, fake, n8n_args):
    run_module(railway_service, n8n_args)
    changed = run_module(railway_service, {**n8n_args, "variables": {**n8n_args["variables"], "DB_TYPE": "sqlite"}})
    assert changed["changed"] and changed["variables_changed"] == ["DB_TYPE"]
    assert changed["changes"] == ["variables", "deployed"]
    assert mutation_calls(fake, "variableCollectionUpsert")[-1]["variables"]["input"]["variables"] == {
        "DB_TYPE": "sqlite"}
    assert fake.mutations.count("serviceInstanceDeployV2") == 2


def test_image_bump_updates_instance_and_deploys(run_module, fake, n8n_args):
    run_module(railway_service, n8n_args)
    bumped = run_module(railway_service, {**n8n_args, "image": "n8nio/n8n:1.124.0"})
    assert bumped["changes"] == ["image", "deployed"]
    update = mutation_calls(fake, "serviceInstanceUpdate")[-1]["variables"]
    assert update["input"] == {"source": {"image": "n8nio/n8n:1.124.0"}}


def test_check_mode_sends_no_mutation(run_module, fake, n8n_args):
    planned = run_module(railway_service, {**n8n_args, "_ansible_diff": True}, check_mode=True)
    assert planned["changed"] and planned["service_id"] is None
    assert planned["changes"] == ["service created", "image", "variables", "volume", "domain", "deployed"]
    assert fake.mutations == [] and all(r["kind"] == "query" for r in fake.requests)
    # existing service, drifted variable: reported, not applied
    run_module(railway_service, n8n_args)
    before = list(fake.mutations)
    drift = run_module(railway_service, {**n8n_args, "secret_variables": {"N8N_ENCRYPTION_KEY": "other-key-xyz"},
                                         "_ansible_diff": True}, check_mode=True)
    assert drift["changed"] and drift["variables_changed"] == ["N8N_ENCRYPTION_KEY"]
    assert fake.mutations == before


def test_diff_shows_keys_not_values(run_module, fake, n8n_args):
    result = run_module(railway_service, {**n8n_args, "_ansible_diff": True})
    after = result["diff"]["after"]["variables"]
    assert set(after) == {"DB_TYPE", "DB_POSTGRESDB_HOST", "N8N_PORT", "WEBHOOK_URL", "N8N_ENCRYPTION_KEY"}
    assert SECRET not in repr(result) and "postgresdb" not in repr(result["diff"])


def test_deployment_failed_fails_the_task(run_module, fake, n8n_args):
    fake.deploy_outcome = "FAILED"
    result = run_module(railway_service, n8n_args)
    assert result["failed"] and "ended FAILED" in result["msg"]


def test_deployment_timeout_fails_the_task(run_module, fake, n8n_args, sleeps):
    fake.deploy_polls = 1000
    result = run_module(railway_service, {**n8n_args, "deploy_timeout": 30, "poll_interval": 10})
    assert result["failed"] and "still BUILDING after 30s" in result["msg"]
    assert sleeps == [10, 10, 10, 10]


def test_duplicate_service_names_are_refused(run_module, fake, n8n_args, project):
    fake.add_service(project["id"], "n8n")
    fake.add_service(project["id"], "n8n")
    result = run_module(railway_service, n8n_args)
    assert result["failed"] and "2 services named 'n8n'" in result["msg"] and fake.mutations == []


def test_volume_at_another_path_is_not_moved(run_module, fake, n8n_args):
    run_module(railway_service, n8n_args)
    result = run_module(railway_service, {**n8n_args, "volume_mount_path": "/data"})
    assert result["failed"] and "'/home/node/.n8n'" in result["msg"]


def test_postgres_from_template(run_module, fake, api, project):
    args = {**api, "project_id": project["id"], "environment_id": project["environments"][0]["id"],
            "name": "Postgres", "template": "postgres"}
    first = run_module(railway_service, args)
    assert first["changed"] and first["changes"] == ["service created"] and first["service_id"]
    deploy = mutation_calls(fake, "templateDeployV2")[0]["variables"]["input"]
    assert [s["name"] for s in deploy["serializedConfig"]["services"].values()] == ["Postgres"]
    # the template deploys its service itself: no extra deploy from us
    assert "serviceInstanceDeployV2" not in fake.mutations
    second = run_module(railway_service, args)
    assert not second["changed"] and second["service_id"] == first["service_id"]


def test_unknown_template_fails(run_module, fake, api, project):
    args = {**api, "project_id": project["id"], "environment_id": project["environments"][0]["id"],
            "name": "Mongo", "template": "no-such-template"}
    result = run_module(railway_service, args)
    assert result["failed"] and "no Railway template with code 'no-such-template'" in result["msg"]


def test_worker_start_command(run_module, fake, n8n_args):
    args = {**n8n_args, "name": "n8n-worker", "start_command": "n8n worker", "domain": False,
            "volume_mount_path": ""}
    first = run_module(railway_service, args)
    assert first["changes"] == ["service created", "image", "variables", "deployed"] and first["url"] == ""
    assert fake.instances[next(k for k in fake.instances if k[1] == first["service_id"])]["startCommand"] == \
        "n8n worker"
    assert not run_module(railway_service, args)["changed"]


def test_services_paginated(run_module, fake, n8n_args, project):
    for i in range(9):
        fake.add_service(project["id"], f"other-{i}")
    fake.max_page_size = 2
    run_module(railway_service, n8n_args)
    assert not run_module(railway_service, n8n_args)["changed"]
    assert fake.mutations.count("serviceCreate") == 1


def test_rate_limited_run_still_converges(run_module, fake, n8n_args, sleeps):
    fake.rate_limit, fake.retry_after = 3, "2"
    result = run_module(railway_service, n8n_args)
    assert not result["failed"] and result["changed"] and sleeps[:3] == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("override,message", [
    ({"image": "n8nio/n8n"}, "pinned tag"),
    ({"image": "n8nio/n8n:latest"}, "latest"),
    ({"volume_mount_path": "relative"}, "absolute"),
    ({"target_port": 70000}, "target_port"),
    ({"variables": {"N8N_ENCRYPTION_KEY": "x"}}, "both plain and secret"),
])
def test_bad_arguments(run_module, fake, n8n_args, override, message):
    result = run_module(railway_service, {**n8n_args, **override})
    assert result["failed"] and message in result["msg"] and fake.requests == []


def test_image_and_template_are_exclusive(run_module, fake, n8n_args):
    result = run_module(railway_service, {**n8n_args, "template": "postgres"})
    assert result["failed"] and "mutually exclusive" in result["msg"]
