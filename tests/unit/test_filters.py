"""aistack.hosting filters: traefik_labels, htpasswd, compose_env, gpu_devices."""

import subprocess

import pytest

from ansible_collections.aistack.hosting.plugins.filter.aistack import (apr1, sftp_key_files, compose_env, compose_secret_files, gpu_devices, htpasswd, traefik_labels,
                                                                 traefik_routes, weak_secrets, invalid_networks, compose_files, duration_seconds,
                                                                 bcrypt_password, invalid_capabilities)


def test_apr1_matches_openssl():
    expected = subprocess.run(["openssl", "passwd", "-apr1", "-salt", "abcdefgh", "s3cr3t pw"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert apr1("s3cr3t pw", "abcdefgh") == expected


@pytest.mark.parametrize("scheme,prefix", [("bcrypt", "admin:$2y$10$"), ("apr1", "admin:$apr1$")])
def test_htpasswd_is_deterministic_and_user_specific(scheme, prefix):
    line = htpasswd("pw", "admin", scheme)
    assert line.startswith(prefix)
    assert line == htpasswd("pw", "admin", scheme)
    assert line.split(":", 1)[1] != htpasswd("pw", "other", scheme).split(":", 1)[1]
    assert htpasswd("pw", "admin", scheme) != htpasswd("pw2", "admin", scheme)


def test_htpasswd_bcrypt_by_default_and_checkable():
    bcrypt = pytest.importorskip("bcrypt")
    hashed = htpasswd("s3cr3t pw", "ops").split(":", 1)[1]
    assert hashed.startswith("$2y$10$") and len(hashed) == 60
    # $2y$ and $2b$ are the same algorithm (Traefik's checker takes both).
    assert bcrypt.checkpw(b"s3cr3t pw", ("$2b$" + hashed[4:]).encode())
    assert not bcrypt.checkpw(b"wrong", ("$2b$" + hashed[4:]).encode())


@pytest.mark.parametrize("password,scheme,message", [("x" * 73, "bcrypt", "72 bytes"), ("pw", "md5", "bcrypt or apr1")])
def test_htpasswd_refuses_what_it_cannot_hash(password, scheme, message):
    with pytest.raises(ValueError, match=message):
        htpasswd(password, "ops", scheme)


def test_traefik_labels_minimal_router():
    labels = traefik_labels("grafana", hostname="grafana.example.com", port=3000)
    assert labels["traefik.enable"] == "true"
    assert labels["traefik.http.routers.grafana.rule"] == "Host(`grafana.example.com`)"
    assert labels["traefik.http.routers.grafana.tls.certresolver"] == "letsencrypt"
    assert labels["traefik.http.services.grafana.loadbalancer.server.port"] == "3000"
    assert "traefik.http.routers.grafana.middlewares" not in labels
    # /metrics is never public: its own router, ahead of the main one, answers 404.
    assert labels["traefik.http.routers.grafana-deny.rule"] == "Host(`grafana.example.com`) && (PathPrefix(`/metrics`))"
    assert labels["traefik.http.routers.grafana-deny.middlewares"] == "deny@file"
    assert labels["traefik.http.routers.grafana-deny.service"] == "grafana"
    assert int(labels["traefik.http.routers.grafana-deny.priority"]) > 1000
    assert "traefik.http.routers.grafana-login.rule" not in labels


def test_traefik_labels_login_paths_are_rate_limited_behind_the_main_chain():
    labels = traefik_labels("n8n", hostname="n8n.example.com", port=5678, ip_allowlist=["10.0.0.0/8"],
                            middlewares=["security-headers@file"],
                            deny_paths=["/metrics", "/rest/owner/setup"], limited_paths=["/rest/login", "/rest/forgot-password"])
    assert labels["traefik.http.routers.n8n-deny.rule"] == (
        "Host(`n8n.example.com`) && (PathPrefix(`/metrics`) || PathPrefix(`/rest/owner/setup`))")
    assert labels["traefik.http.routers.n8n-login.rule"] == (
        "Host(`n8n.example.com`) && (PathPrefix(`/rest/forgot-password`) || PathPrefix(`/rest/login`))")
    assert labels["traefik.http.routers.n8n-login.middlewares"] == "login-rate-limit@file,n8n-allowlist,security-headers@file"
    assert int(labels["traefik.http.routers.n8n-deny.priority"]) > int(labels["traefik.http.routers.n8n-login.priority"])
    assert labels["traefik.http.routers.n8n-login.tls.certresolver"] == "letsencrypt"


def test_traefik_labels_deny_paths_below_a_path_prefix_and_none():
    labels = traefik_labels("app", hostname="x.example.com", port=80, path_prefix="/app/")
    assert labels["traefik.http.routers.app-deny.rule"] == "Host(`x.example.com`) && (PathPrefix(`/app/metrics`) || PathPrefix(`/metrics`))"
    assert not any(key.startswith("traefik.http.routers.app-deny") for key in traefik_labels("app", hostname="x.example.com", port=80, deny_paths=[]))


@pytest.mark.parametrize("path", ["metrics", "/a path", "/x`) || Host(`evil"])
def test_traefik_labels_rejects_paths_that_are_not_paths(path):
    with pytest.raises(ValueError):
        traefik_labels("app", hostname="x.example.com", port=80, deny_paths=[path])


def test_traefik_labels_auth_allowlist_and_middlewares_chain_in_order():
    labels = traefik_labels("n8n", hostname="n8n.example.com", port=5678,
                            basic_auth_users=[htpasswd("pw", "ops", "apr1")], ip_allowlist=["10.0.0.0/8"],
                            middlewares=["security-headers@file"], path_prefix="/webhook")
    assert labels["traefik.http.routers.n8n.middlewares"] == "n8n-allowlist,admin-rate-limit@file,n8n-auth,security-headers@file"
    assert labels["traefik.http.middlewares.n8n-allowlist.ipallowlist.sourcerange"] == "10.0.0.0/8"
    assert "$$apr1$$" in labels["traefik.http.middlewares.n8n-auth.basicauth.users"]
    assert labels["traefik.http.routers.n8n.rule"] == "Host(`n8n.example.com`) && PathPrefix(`/webhook`)"


def test_traefik_labels_for_docker_container_keeps_single_dollars():
    labels = traefik_labels("x", hostname="x.example.com", port=80, basic_auth_users=["u:$apr1$a$b"], compose=False)
    assert labels["traefik.http.middlewares.x-auth.basicauth.users"] == "u:$apr1$a$b"


@pytest.mark.parametrize("name,hostname", [("Bad_Name", "x.example.com"), ("ok", "not a host")])
def test_traefik_labels_rejects_bad_names(name, hostname):
    with pytest.raises(ValueError):
        traefik_labels(name, hostname=hostname, port=80)


def _compose(*services):
    return {"services": {name: {"container_name": f"aistack-{name}", "x-traefik": labels} for name, labels in services}}


def test_traefik_routes_turn_the_labels_into_a_file_provider_configuration():
    users = [htpasswd("pw", "ops", "apr1")]
    labels = traefik_labels("n8n", "n8n.example.com", 5678, basic_auth_users=users, ip_allowlist=["10.0.0.0/8"],
                            middlewares=["security-headers@file"], deny_paths=["/metrics"], limited_paths=["/rest/login"])
    http = traefik_routes(_compose(("n8n", labels), ("db", {})))["http"]
    assert http["services"] == {"n8n": {"loadBalancer": {"servers": [{"url": "http://aistack-n8n:5678"}]}}}
    main = http["routers"]["n8n"]
    assert main == {"rule": "Host(`n8n.example.com`)", "entryPoints": ["websecure"], "service": "n8n",
                    "tls": {"certResolver": "letsencrypt"},
                    "middlewares": ["n8n-allowlist", "admin-rate-limit@file", "n8n-auth", "security-headers@file"]}
    assert http["routers"]["n8n-deny"]["priority"] == 10000 and http["routers"]["n8n-deny"]["middlewares"] == ["deny@file"]
    assert http["routers"]["n8n-login"]["middlewares"][0] == "login-rate-limit@file"
    # The compose file doubled every $; the file provider gets the hash Traefik checks.
    assert http["middlewares"]["n8n-auth"] == {"basicAuth": {"users": users}}
    assert http["middlewares"]["n8n-allowlist"] == {"ipAllowList": {"sourceRange": ["10.0.0.0/8"]}}


def test_traefik_routes_share_one_load_balancer_and_skip_unrouted_services():
    labels = traefik_labels("hook", "n8n.example.com", 5678, deny_paths=[])
    http = traefik_routes(_compose(("webhook-1", labels), ("webhook-2", labels)))["http"]
    assert [s["url"] for s in http["services"]["hook"]["loadBalancer"]["servers"]] == [
        "http://aistack-webhook-1:5678", "http://aistack-webhook-2:5678"]
    assert traefik_routes(_compose(("db", {}))) == {} and traefik_routes({}) == {}


def test_traefik_routes_to_another_hosts_private_address():
    # multi_host: ComfyUI runs on a GPU host; Traefik on the edge reaches the port it publishes there.
    labels = traefik_labels("comfyui", "comfy.example.com", 8188)
    http = traefik_routes(_compose(("comfyui", labels)), address="10.77.0.4")["http"]
    assert http["services"]["comfyui"]["loadBalancer"]["servers"] == [{"url": "http://10.77.0.4:8188"}]
    assert http["routers"]["comfyui"]["rule"] == "Host(`comfy.example.com`)"


@pytest.mark.parametrize("label,message", [
    ("traefik.http.routers.x.observability.tracing", "router setting"),
    ("traefik.http.middlewares.x-strip.stripprefix.prefixes", "middleware setting"),
    ("traefik.tcp.routers.x.rule", "is not one traefik_labels writes"),
])
def test_traefik_routes_refuse_settings_they_cannot_translate(label, message):
    labels = {**traefik_labels("x", "x.example.com", 80), label: "v"}
    with pytest.raises(ValueError, match=message):
        traefik_routes(_compose(("x", labels)))


def test_traefik_routes_refuse_a_router_without_a_port():
    labels = {k: v for k, v in traefik_labels("x", "x.example.com", 80).items() if ".services." not in k}
    with pytest.raises(ValueError, match="without a port"):
        traefik_routes(_compose(("x", labels)))


def test_compose_env_quotes_literally_and_sorts():
    assert compose_env({"B": "x$y", "A": True}) == "A='true'\nB='x$y'\n"


@pytest.mark.parametrize("values", [{"A": "it's"}, {"A": "two\nlines"}, {"1A": "x"}])
def test_compose_env_refuses_what_it_cannot_quote(values):
    with pytest.raises(ValueError):
        compose_env(values)


@pytest.mark.parametrize(("gpus", "ready", "expected"), [
    ("auto", True, [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]),
    ("auto", False, []),
    ("all", False, [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]),
    ("none", True, []),
    ([0, "GPU-1a2b"], True, [{"driver": "nvidia", "device_ids": ["0", "GPU-1a2b"], "capabilities": ["gpu"]}]),
    ([], True, []),
])
def test_gpu_devices(gpus, ready, expected):
    assert gpu_devices(gpus, ready) == expected


@pytest.mark.parametrize("gpus", ["some", 3, {"a": 1}])
def test_gpu_devices_rejects_other_values(gpus):
    with pytest.raises(ValueError, match="gpu_devices"):
        gpu_devices(gpus)


@pytest.mark.parametrize("value", ["change-me", "CHANGE-ME", "change-me-32-random-characters", "changeme123456",
                                   "password", "Passw0rd-Passw0rd", "cf-token-with-zone-dns-edit", "xxxxxxxxxxxxxxxx"])
def test_weak_secrets_rejects_placeholders_naming_the_variable(value):
    problems = weak_secrets({"owner_pw": value})
    assert len(problems) == 1 and problems[0].startswith("owner_pw is a placeholder")
    assert value.lower() not in problems[0].lower()  # names the variable, never the value


def test_weak_secrets_length_empty_and_type():
    assert weak_secrets({"redis_password": "Zq8-short"}) == [
        "redis_password is shorter than 12 characters (aistack_secret_min_length): "
        "set a longer one or leave it empty to have one generated"]
    assert weak_secrets({"redis_password": "Zq8-short"}, 8) == []
    assert weak_secrets({"a": "", "b": None, "c": "k7Pq-2mVx-9sLw-4Tz"}) == []
    assert weak_secrets({"n8n_encryption_key": 123456789012345}) == [
        "n8n_encryption_key must be a string (quote it in YAML)"]


def test_invalid_networks_and_allowlists_that_are_not_ranges():
    assert invalid_networks(["10.0.0.0/8", "203.0.113.7", "2001:db8::/32", "10.0.0.1/8"]) == []
    assert invalid_networks(["office", "10.0.0.0/33", "10.0.0.0/8"]) == ["office", "10.0.0.0/33"]
    with pytest.raises(ValueError, match=r"ip_allowlist entries \['office'\]"):
        traefik_labels("x", "x.example.com", 80, ip_allowlist=["office"])


def test_compose_files_split_by_secret_flag():
    specs = [{"src": "a.j2", "dest": "a.yml", "mode": "0644", "validate": "true %s"},
             {"src": "b.j2", "dest": "b.conf", "owner": 999, "mode": "0600", "secret": True}]
    assert compose_files(specs, ["A\n", "B\n"]) == [{"dest": "a.yml", "content": "A\n", "mode": "0644", "validate": "true %s"}]
    assert compose_files(specs, ["A\n", "B\n"], secret=True) == [{"dest": "b.conf", "content": "B\n", "owner": "999", "mode": "0600"}]
    assert compose_files([], []) == []
    with pytest.raises(ValueError, match="2 file specs but 1 rendered"):
        compose_files(specs, ["A\n"])


def test_bcrypt_password_is_stable_checkable_and_per_account():
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt_password("Owner-Passw0rd", "owner@example.test")
    assert hashed.startswith("$2a$10$") and len(hashed) == 60
    assert hashed == bcrypt_password("Owner-Passw0rd", "owner@example.test")
    assert bcrypt.checkpw(b"Owner-Passw0rd", hashed.encode())
    assert not bcrypt.checkpw(b"owner-passw0rd", hashed.encode())
    assert hashed != bcrypt_password("Owner-Passw0rd", "other@example.test")
    with pytest.raises(ValueError, match="empty"):
        bcrypt_password("", "owner@example.test")


def test_compose_secret_files_one_directory_per_service():
    entries = compose_secret_files({"worker-1": {"owner": "1000", "values": {"N8N_ENCRYPTION_KEY": "k", "DB_PASS": "p"}},
                                    "grafana": {"owner": "472", "values": {"GF_SECURITY_ADMIN_PASSWORD_": "g"}}})
    assert entries == [
        {"dest": "secrets/grafana/GF_SECURITY_ADMIN_PASSWORD_", "content": "g", "owner": "472", "group": "root",
         "mode": "0400", "restart": ["grafana"]},
        {"dest": "secrets/worker-1/DB_PASS", "content": "p", "owner": "1000", "group": "root", "mode": "0400",
         "restart": ["worker-1"]},
        {"dest": "secrets/worker-1/N8N_ENCRYPTION_KEY", "content": "k", "owner": "1000", "group": "root",
         "mode": "0400", "restart": ["worker-1"]}]
    assert compose_secret_files({}) == []
    with pytest.raises(ValueError, match="not an environment variable name"):
        compose_secret_files({"n8n": {"owner": "1000", "values": {"../escape": "x"}}})
    with pytest.raises(ValueError, match="needs"):
        compose_secret_files({"n8n": "not a mapping"})


def test_compose_files_dest_directory_keeps_the_source_name():
    entries = compose_files([{"src": "/ctl/dashboards/host.json", "dest": "grafana/dashboards/", "mode": "0644"},
                             {"src": "a.j2", "dest": "conf/a.yml"}], ["{}", "a: 1"])
    assert [e["dest"] for e in entries] == ["grafana/dashboards/host.json", "conf/a.yml"]


def test_sftp_key_files_give_each_target_its_key_and_pinned_host_keys_as_secrets():
    targets = [{"name": "nas", "host": "nas.lan", "port": 2222, "private_key": "-----KEY-----\n\n",
                "host_key": "ssh-ed25519 AAAA\n\n  ssh-rsa BBBB  \n"},
               {"name": "offsite", "host": "203.0.113.7", "private_key": "K", "host_key": "ssh-ed25519 CCCC"}]
    files = sftp_key_files(targets, "/etc/aistack/backup")
    assert files == [
        {"dest": "/etc/aistack/backup/nas.key", "secret": True, "content": "-----KEY-----\n"},
        {"dest": "/etc/aistack/backup/nas.known_hosts", "secret": True,
         "content": "[nas.lan]:2222 ssh-ed25519 AAAA\n[nas.lan]:2222 ssh-rsa BBBB\n"},
        {"dest": "/etc/aistack/backup/offsite.key", "secret": True, "content": "K\n"},
        {"dest": "/etc/aistack/backup/offsite.known_hosts", "secret": True, "content": "203.0.113.7 ssh-ed25519 CCCC\n"},
    ]
    assert sftp_key_files([], "/x") == []


@pytest.mark.parametrize("value, seconds", [("20s", 20.0), ("1m30s", 90.0), ("1h", 3600.0), ("500ms", 0.5), ("0", 0.0),
                                            ("1.5m", 90.0), ("2h0m5s", 7205.0)])
def test_duration_seconds_reads_go_durations(value, seconds):
    assert duration_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["20", "20 s", "soon", "", "1m30", "-5s", "5d"])
def test_duration_seconds_refuses_what_compose_would(value):
    assert duration_seconds(value) is None


def test_invalid_capabilities_names_each_container_whose_value_is_not_a_list_of_names():
    assert invalid_capabilities({"aistack-redis": ["NET_BIND_SERVICE"], "aistack-n8n": [], "x": ("SYS_NICE",)}) == []
    assert invalid_capabilities({"a": ["cap_net_admin"], "b": "NET_ADMIN", "c": {"NET_ADMIN": True}, "d": ["CAP_X", 1],
                                 "e": ["SYS_NICE"]}) == ["a", "b", "c", "d"]
