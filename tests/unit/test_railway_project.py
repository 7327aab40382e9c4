"""railway_project: find-or-create by exact name, refuse ambiguity, check mode (against the FAKE Railway)."""

from __future__ import annotations

from railway_fake import api, fake, sleeps  # noqa: F401  (fixtures)

from ansible_collections.aistack.hosting.plugins.modules import railway_project


def test_create_then_rerun_is_unchanged(run_module, fake, api):
    fake.add_project("aistack-n8n-old")
    first = run_module(railway_project, {**api, "name": "aistack-n8n"})
    assert first["changed"] and first["created"] == ["project"] and first["project_id"]
    assert first["environment_name"] == "production" and first["environment_id"]
    second = run_module(railway_project, {**api, "name": "aistack-n8n"})
    assert not second["changed"] and second["created"] == []
    assert (second["project_id"], second["environment_id"]) == (first["project_id"], first["environment_id"])
    assert fake.mutations == ["projectCreate"]


def test_missing_environment_is_created(run_module, fake, api):
    project = fake.add_project("stack")
    result = run_module(railway_project, {**api, "name": "stack", "environment": "staging"})
    assert result["changed"] and result["created"] == ["environment"] and result["project_id"] == project["id"]
    assert fake.mutations == ["environmentCreate"]
    assert not run_module(railway_project, {**api, "name": "stack", "environment": "staging"})["changed"]


def test_duplicate_names_are_refused(run_module, fake, api):
    a, b = fake.add_project("stack"), fake.add_project("stack")
    result = run_module(railway_project, {**api, "name": "stack"})
    assert result["failed"] and "2 projects named 'stack'" in result["msg"]
    assert a["id"] in result["msg"] and b["id"] in result["msg"]
    assert fake.mutations == []


def test_exact_name_only(run_module, fake, api):
    fake.add_project("Stack")
    fake.add_project("stack-2")
    result = run_module(railway_project, {**api, "name": "stack"})
    assert result["changed"] and result["created"] == ["project"]


def test_check_mode_sends_no_mutation(run_module, fake, api):
    result = run_module(railway_project, {**api, "name": "new", "environment": "staging", "_ansible_diff": True},
                        check_mode=True)
    assert result["changed"] and result["created"] == ["project", "environment"]
    assert result["project_id"] is None and result["diff"]["before"]["project"] is None
    assert fake.mutations == [] and all(r["kind"] == "query" for r in fake.requests)


def test_pagination_finds_a_project_on_a_later_page(run_module, fake, api):
    for i in range(10):
        fake.add_project(f"other-{i}")
    wanted = fake.add_project("stack")
    fake.max_page_size = 2
    result = run_module(railway_project, {**api, "name": "stack"})
    assert not result["changed"] and result["project_id"] == wanted["id"]


def test_token_from_environment(run_module, fake, api, monkeypatch):
    monkeypatch.setenv("RAILWAY_API_TOKEN", api["railway_token"])
    result = run_module(railway_project, {"railway_api_url": fake.url, "name": "from-env"})
    assert result["changed"] and not result["failed"]


def test_graphql_error_fails_with_its_message(run_module, fake, api):
    fake.fail_fields["projectCreate"] = "You have reached the project limit of your plan"
    result = run_module(railway_project, {**api, "name": "stack"})
    assert result["failed"] and "project limit of your plan" in result["msg"]
    assert api["railway_token"] not in result["msg"]


def test_missing_token_is_named(run_module, fake, monkeypatch):
    monkeypatch.delenv("RAILWAY_API_TOKEN", raising=False)
    result = run_module(railway_project, {"railway_api_url": fake.url, "name": "stack"})
    assert result["failed"] and "railway_token" in result["msg"] and fake.requests == []
