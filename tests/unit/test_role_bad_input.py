"""Bad input to a role fails before the host is touched, naming the variable.

Each case runs the real role with ansible-playbook against the local machine
in check mode; the failure must come from argument validation or preflight
(so no task that changes anything has run: changed=0), and the message must
name the variable and say how to fix it.
"""

import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - "aistack.hosting.{{ role_under_test }}"
"""

# What railway_n8n needs before its later checks run (stand-ins for Vault values).
RAILWAY_OK = {"railway_n8n_token": "t", "railway_n8n_encryption_key": "k" * 32,
              "railway_n8n_owner_email": "owner@example.test", "railway_n8n_owner_password": "Owner-Passw0rd-1"}
BACKUP_PASSWORD = "Unit-Backup-Passw0rd-42"
BACKUP_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOb0Ct8Mkd4T2WlqCvDm0Vg5xjuuKkG3JIvTLuqH0Ake"
BACKUP_SFTP = {"name": "offsite-sftp", "type": "sftp", "host": "vault.example.test", "user": "restic", "path": "/srv/restic",
               "host_key": BACKUP_HOST_KEY,
               "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----\n"}
BACKUP_S3 = {"name": "offsite-s3", "type": "s3", "endpoint": "https://s3.example.test", "bucket": "aistack-backups",
             "access_key_id": "AKIAUNITTEST", "secret_access_key": "unit-secret-access-key"}
# What the n8n role's WhatsApp assistant needs before its own checks (stand-ins for Vault values).
WHATSAPP_OK = {"redis_enabled": True, "postgres_enabled": True, "n8n_hostname": "n8n.example.com",
               "n8n_owner_email": "ops@example.com", "n8n_owner_password": "Owner-Passw0rd-42",
               "n8n_whatsapp_enabled": True, "n8n_whatsapp_phone_number_id": "123456789012345",
               "n8n_whatsapp_access_token": "EAAG-unit-test-token-0123456789"}
# What open_webui needs before its other checks (its play's postgres and ollama roles).
OPEN_WEBUI_OK = {"open_webui_enabled": True, "open_webui_hostname": "chat.example.com", "open_webui_admin_email": "admin@example.com",
                 "postgres_enabled": True, "ollama_enabled": True}
# What the wireguard role needs before its later checks (localhost is in the group all).
WIREGUARD_OK = {"wireguard_enabled": True, "wireguard_address": "10.77.0.1", "wireguard_peers_group": "all",
                "wireguard_endpoint": "wg-1.example.com"}
CASES = {
    "docker: unknown install source": ("docker", {"docker_install_source": "snap"}, r"docker_install_source.*(one of|official)"),
    "docker: daemon options not a dict": ("docker", {"docker_daemon_options": "log-driver=journald"}, r"docker_daemon_options.*dict"),
    "docker: mirror not a URL": ("docker", {"docker_registry_mirrors": ["mirror.example.com"]}, r"docker_registry_mirrors must hold http"),
    "docker: insecure registry with a scheme": ("docker", {"docker_insecure_registries": ["http://reg:5000"]}, r"docker_insecure_registries"),
    "docker: offline without a source": ("docker", {"docker_install_source": "offline"}, r"docker_offline_debs.*docker_offline_apt_repository"),
    "docker: offline deb missing": (
        "docker", {"docker_install_source": "offline", "docker_offline_debs": ["/nonexistent/docker.io.deb"]},
        r"docker_offline_debs names files that do not exist",
    ),
    "docker: mirrors set twice": (
        "docker", {"docker_daemon_options": {"registry-mirrors": ["https://m.example.com"]}},
        r"docker_registry_mirrors.*not inside docker_daemon_options",
    ),
    "docker: autoheal interval too short": ("docker", {"docker_autoheal_interval_seconds": 1}, r"docker_autoheal_interval_seconds \(1\) must be 5 or more"),
    "docker: autoheal label with a space": ("docker", {"docker_autoheal_label": "my label"}, r"docker_autoheal_label=my label is not a label key"),
    "docker: daemon defaults not a dict": ("docker", {"docker_daemon_defaults": "live-restore=true"}, r"docker_daemon_defaults must be a dict"),
    "docker: offline mirror not a dict": (
        "docker", {"docker_offline_apt_repository": "uris=http://mirror.internal/docker"}, r"docker_offline_apt_repository must be a dict",
    ),
    "docker: offline mirror incomplete": (
        "docker", {"docker_offline_apt_repository": {"uris": "http://mirror.internal/docker"}},
        r"docker_offline_apt_repository needs uris, suites.*got keys \['uris'\]",
    ),
    "docker: offline source without Compose": (
        "docker", {"docker_install_source": "offline",
                   "docker_offline_apt_repository": {"uris": "http://mirror.internal/docker", "suites": "bookworm", "trusted": True}},
        r"No Compose v2 for docker_install_source=offline",
    ),
    "docker: compose plugin not on the controller": (
        "docker", {"docker_compose_plugin_src": "/nonexistent/docker-compose"},
        r"docker_compose_plugin_src=/nonexistent/docker-compose is not a file on the controller",
    ),
    "docker: subnet not a CIDR": ("docker", {"docker_network_subnet": "172.30.0.0"}, r"docker_network_subnet=172.30.0.0 is not a CIDR"),
    "docker: autoheal not a bool": ("docker", {"docker_autoheal_enabled": "maybe"}, r"docker_autoheal_enabled.*bool"),
    "common: memory percent above 100": ("redis", {"aistack_container_memory_percent": 150}, r"aistack_container_memory_percent \(150\) must be within 0-100"),
    "common: memory limit not a size": ("redis", {"aistack_container_memory_limits": {"aistack-redis": "lots"}}, r"not sizes: aistack-redis"),
    "common: pids limit not an int": ("redis", {"aistack_container_pids_limit": "many"}, r"aistack_container_pids_limit.*int"),
    "common: cpu percent above 100": ("redis", {"aistack_container_cpu_percent": 120}, r"aistack_container_cpu_percent \(120\) must be within 0-100"),
    "common: cpu limit not a number": ("redis", {"aistack_container_cpu_limits": {"aistack-redis": "two"}}, r"not numbers: aistack-redis"),
    "common: metrics dir relative": ("redis", {"aistack_metrics_dir": "metrics"}, r"aistack_metrics_dir=metrics must be an absolute host path"),
    "common: verify not a known choice": ("redis", {"aistack_verify": "sometimes"}, r"aistack_verify.*(changed, always|choices)"),
    "docker: pull parallelism not a number": ("docker", {"docker_pull_parallel": "many"}, r"docker_pull_parallel.*int"),
    "common: read-only not a bool": ("redis", {"aistack_container_read_only": "sometimes"}, r"aistack_container_read_only.*bool"),
    "fastapi: migrate_when not a known choice": ("fastapi_celery", {"fastapi_celery_migrate_when": "sometimes"}, r"fastapi_celery_migrate_when.*(image_changed, always|choices)"),
    "fastapi: tmpfs not a list": ("fastapi_celery", {"fastapi_celery_tmpfs": {"path": "/cache"}}, r"fastapi_celery_tmpfs.*list"),
    "common: data TLS without a secrets host": ("redis", {"aistack_data_tls": True}, r"aistack_data_tls \(multi_host_data_tls.*needs aistack_secrets_host"),
    "common: data TLS served off the secrets host": (
        "redis", {"aistack_data_tls": True, "aistack_secrets_host": "data-1", "aistack_private_address": "10.0.0.2",
                  "aistack_private_services": ["redis"]}, r"aistack_data_tls.*must run on that host \(here: redis on \S+\)"),
    "common: capability not a name": ("redis", {"aistack_container_cap_add": {"aistack-redis": ["cap_net_admin"]}}, r"aistack_container_cap_add\[aistack-redis\] must be a list of capability names"),
    "fastapi: cap_add not a list": ("fastapi_celery", {"fastapi_celery_cap_add": {"NET_ADMIN": True}}, r"fastapi_celery_cap_add.*list"),
    "docker: bad state": ("docker", {"docker_state": "removed"}, r"docker_state.*(one of|present)"),
    "postgres: database without owner": ("postgres", {"postgres_databases": [{"name": "app"}]}, r"owner.*postgres_databases|postgres_databases.*owner"),
    "postgres: superuser as owner": ("postgres", {"postgres_databases": [{"name": "app", "owner": "postgres"}]}, r"must not be the superuser"),
    "postgres: image without major": ("postgres", {"postgres_image": "postgres:latest"}, r"postgres_image=postgres:latest must carry the major"),
    "postgres: settings not a dict": ("postgres", {"postgres_settings": ["work_mem=64MB"]}, r"postgres_settings.*dict"),
    "redis: bad maxmemory": ("redis", {"redis_maxmemory": "lots"}, r"redis_maxmemory=lots is not a Redis size"),
    "redis: bad policy": ("redis", {"redis_maxmemory_policy": "lru"}, r"redis_maxmemory_policy.*one of"),
    "redis: negative keepalive": ("redis", {"redis_tcp_keepalive_seconds": -1}, r"redis_tcp_keepalive_seconds=-1 must be 0"),
    "redis: dead clients kept for minutes": ("redis", {"redis_tcp_retries2": 20}, r"redis_tcp_retries2=20\s+must be within 3-15"),
    "redis: acl user without permissions": ("redis", {"redis_acl_users": [{"name": "celery"}]}, r"redis_acl_users needs entries"),
    "traefik: image without a version tag": ("traefik", {"traefik_image": "traefik:latest", "traefik_dashboard_hostname": "t.example.com"},
                                             r"traefik_image=traefik:latest: this role needs Traefik v3.6 or newer"),
    "traefik: too old for Docker 29": ("traefik", {"traefik_image": "traefik:v3.1.2", "traefik_dashboard_hostname": "t.example.com"}, r"v3.6 or newer"),
    "traefik: login rate limit of zero": (
        "traefik", {"traefik_login_rate_limit_per_minute": 0, "traefik_dashboard_hostname": "t.example.com"},
        r"traefik_login_rate_limit_per_minute must be 1 or more",
    ),
    "traefik: admin burst negative": (
        "traefik", {"traefik_admin_rate_limit_burst": -5, "traefik_dashboard_hostname": "t.example.com"},
        r"traefik_admin_rate_limit_burst must be 1 or more",
    ),
    "traefik: sni strict not a bool": (
        "traefik", {"traefik_tls_sni_strict": "sometimes", "traefik_dashboard_hostname": "t.example.com"},
        r"traefik_tls_sni_strict.*bool",
    ),
    "traefik: ACME CA certificate missing": (
        "traefik", {"traefik_acme_ca_certificates": ["/nonexistent/acme-ca.pem"], "traefik_dashboard_hostname": "t.example.com"},
        r"traefik_acme_ca_certificates names files missing on the controller:\s+/nonexistent/acme-ca.pem",
    ),
    "traefik: dashboard without hostname": ("traefik", {}, r"traefik_dashboard_hostname is empty"),
    "traefik: cloudflare without token": (
        "traefik", {"traefik_certresolver": "cloudflare", "traefik_dashboard_hostname": "t.example.com"},
        r"traefik_cloudflare_dns_api_token is empty",
    ),
    "n8n: runner tag differs from n8n": ("n8n", {"n8n_runners_image": "n8nio/runners:2.40.0"}, r"must both be tagged\s+n8n_version=2.41.1"),
    "n8n: editor allow-list entry not a range": (
        "n8n", {"n8n_editor_ip_allowlist": ["10.0.0.0/8", "office"]}, r"n8n_editor_ip_allowlist: office\s+are not IP addresses or CIDR"),
    "n8n: worker host in regular mode": (
        "n8n", {"n8n_main": False, "n8n_mode": "regular", "n8n_webhook_processors": 0},
        r"n8n_main is false \(a worker host.*n8n_mode must be 'queue' with n8n_workers >= 1",
    ),
    "n8n: worker host without workers": ("n8n", {"n8n_main": False, "n8n_workers": 0}, r"n8n_main is false.*n8n_workers=0"),
    "n8n: worker host with webhook processors": (
        "n8n", {"n8n_main": False, "n8n_webhook_processors": 1}, r"n8n_main is false.*n8n_webhook_processors=1",
    ),
    "n8n: n8n_main not a bool": ("n8n", {"n8n_main": "edge"}, r"n8n_main.*bool"),
    "n8n: runners outbound not a bool": ("n8n", {"n8n_runners_outbound": "sometimes"}, r"n8n_runners_outbound.*bool"),
    "n8n: editor allow-list not a list": ("n8n", {"n8n_editor_ip_allowlist": {"office": "10.0.0.0/8"}}, r"n8n_editor_ip_allowlist.*list"),
    "n8n: owner from the environment on an n8n before 2.17": (
        "n8n", {"n8n_version": "2.16.0", "n8n_mode": "regular"}, r"n8n_owner_managed_by_env is true but n8n_version=2.16.0 predates"),
    "n8n: owner_managed_by_env not a bool": ("n8n", {"n8n_owner_managed_by_env": "sometimes"}, r"n8n_owner_managed_by_env.*bool"),
    "n8n: negative workers": ("n8n", {"n8n_workers": -1}, r"n8n_workers \(-1\).*must be >= 0"),
    "n8n: unknown throughput profile": ("n8n", {"n8n_profile": "fast"}, r"n8n_profile.*(standard, throughput|choices)"),
    "n8n: expression engine not offered": ("n8n", {"n8n_expression_engine": "quickjs"}, r"n8n_expression_engine.*(vm, legacy|choices)"),
    "n8n: no Postgres connections": ("n8n", {"n8n_db_pool_size": 0}, r"n8n_db_pool_size \(0\) >= 1"),
    "n8n: stalled-job checks off": ("n8n", {"n8n_queue_stalled_check_seconds": 0}, r"n8n_queue_stalled_check_seconds \(0\) >= 1"),
    "n8n: job lease shorter than its renewals": ("n8n", {"n8n_queue_lock_seconds": 3}, r"n8n_queue_lock_seconds \(3\) >= 6"),
    "n8n: no reconnect backoff": ("n8n", {"n8n_db_reconnect_max_seconds": 0},
                                  r"n8n_db_reconnect_max_seconds \(0\) between 1 and 300"),
    "n8n: log level not n8n's": ("n8n", {"n8n_log_level": "verbose"}, r"n8n_log_level.*(error, warn, info, debug|choices)"),
    "n8n: webhook processors in regular mode": ("n8n", {"n8n_mode": "regular", "n8n_webhook_processors": 2}, r"webhook processors need n8n_mode: queue"),
    "n8n: queue mode without redis": ("n8n", {}, r"n8n_mode is 'queue' but Redis is neither part of this play"),
    "n8n: no postgres for its database": (
        "n8n", {"redis_enabled": True}, r"n8n's database n8n \(owner n8n\) is created by aistack.hosting.postgres.*add the postgres role before n8n",
    ),
    "n8n: owner password missing": (
        "n8n", {"redis_enabled": True, "postgres_enabled": True,
                "n8n_hostname": "n8n.example.com", "n8n_owner_email": "ops@example.com"},
        r"n8n_owner_password",
    ),
    "n8n: development port with a public host name": (
        "n8n", {"redis_enabled": True, "postgres_enabled": True, "n8n_dev_port": 5678, "n8n_hostname": "n8n.example.com"},
        r"n8n_dev_port=5678 is development mode.*never for production: unset n8n_hostname \(n8n.example.com\)",
    ),
    "n8n: development port with webhook processors": (
        "n8n", {"redis_enabled": True, "postgres_enabled": True, "n8n_dev_port": 5678, "n8n_webhook_processors": 1},
        r"set n8n_webhook_processors: 0 \(main serves production webhooks here\)",
    ),
    "n8n: development port out of range": (
        "n8n", {"redis_enabled": True, "postgres_enabled": True, "n8n_dev_port": 70000}, r"n8n_dev_port must be a TCP port \(1-65535\)"),
    "n8n: development port not a number": ("n8n", {"n8n_dev_port": "localhost"}, r"n8n_dev_port.*int"),
    "fastapi: development port with a public host name": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_dev_port": 8000,
                           "fastapi_celery_hostname": "app.example.com"},
        r"fastapi_celery_dev_port=8000 is development mode.*fastapi_celery_hostname\s+\(app.example.com\) must be empty",
    ),
    "fastapi: development port out of range": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_dev_port": -1},
        r"fastapi_celery_dev_port=-1 is development mode.*must be a TCP port \(1-65535\)",
    ),
    "fastapi: start period not a duration": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_web_start_period": "10 minutes"},
        r"fastapi_celery_web_start_period=10 minutes must be a Go duration",
    ),
    "fastapi: wait shorter than the start period": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_web_start_period": "10m", "fastapi_celery_wait_timeout": 300},
        r"fastapi_celery_wait_timeout=300 seconds at least 1 and at least that start period",
    ),
    "fastapi: wait of zero": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_wait_timeout": 0}, r"fastapi_celery_wait_timeout=0 seconds at least 1"),
    "fastapi: wait not a number": ("fastapi_celery", {"fastapi_celery_wait_timeout": "long"}, r"fastapi_celery_wait_timeout.*int"),
    "fastapi: extra host to a range": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_extra_hosts": {"whatsapp-proxy": "10.0.0.0/8"}},
        r"fastapi_celery_extra_hosts: whatsapp-proxy must map a host name to an IP address or host-gateway",
    ),
    "fastapi: extra host to a name": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_extra_hosts": {"proxy": "proxy.example.com"}},
        r"fastapi_celery_extra_hosts: address proxy.example.com must map",
    ),
    "fastapi: extra host name with a space": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_extra_hosts": {"my proxy": "10.0.0.5"}},
        r"fastapi_celery_extra_hosts: my proxy must map",
    ),
    "fastapi: extra hosts as a list": ("fastapi_celery", {"fastapi_celery_extra_hosts": ["proxy:10.0.0.5"]}, r"fastapi_celery_extra_hosts.*dict"),
    "fastapi: extra volume with a relative target": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_extra_volumes": ["/srv/models:models:ro"]},
        r"fastapi_celery_extra_volumes: /srv/models:models:ro must be <host path or volume name>:<absolute container path>",
    ),
    "fastapi: extra volume with an unknown mode": (
        "fastapi_celery", {"postgres_enabled": True, "redis_enabled": True, "fastapi_celery_extra_volumes": ["hf_cache:/cache:rx"]},
        r"fastapi_celery_extra_volumes: hf_cache:/cache:rx must be",
    ),
    "fastapi: database switch not a bool": ("fastapi_celery", {"fastapi_celery_database_enabled": "perhaps"}, r"fastapi_celery_database_enabled.*bool"),
    "fastapi: web model cache not a bool": ("fastapi_celery", {"fastapi_celery_web_models_cache": "yes please"}, r"fastapi_celery_web_models_cache.*bool"),
    "n8n: whatsapp phone number id not numeric": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_phone_number_id": "+52 555 000"},
        r"n8n_whatsapp_phone_number_id\s+must\s+be\s+the\s+numeric\s+id",
    ),
    "n8n: whatsapp no access token": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_access_token": ""},
        r"n8n_whatsapp_access_token\s+is\s+required\s+\(from\s+Vault\)",
    ),
    "n8n: whatsapp placeholder verify token": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_verify_token": "change-me"},
        r"n8n_whatsapp_verify_token",
    ),
    "n8n: whatsapp api url without a scheme": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_api_url": "graph.facebook.com/v21.0"},
        r"n8n_whatsapp_api_url\s+and\s+n8n_whatsapp_app_url\s+must\s+be\s+http\(s\)\s+URLs",
    ),
    "n8n: whatsapp webhook path with a slash": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_webhook_path": "wa/in"},
        r"n8n_whatsapp_webhook_path=wa/in\s+must\s+be\s+letters,\s+digits",
    ),
    "n8n: whatsapp reply field with a quote": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_reply_field": "re'ply"},
        r"n8n_whatsapp_reply_field=re'ply\s+must\s+be\s+a\s+JSON\s+field\s+name",
    ),
    "n8n: whatsapp send tries above n8n's limit": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_send_tries": 9},
        r"n8n_whatsapp_send_tries=9\s+must\s+be\s+1-5",
    ),
    "n8n: whatsapp reminder period of 90 s": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_reminder_every_seconds": 90},
        r"n8n_whatsapp_reminder_every_seconds=90\s+must\s+be\s+1-59\s+or\s+a\s+multiple\s+of\s+60",
    ),
    "n8n: whatsapp cron of three fields": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_analytics_cron": "0 23 *"},
        r"n8n_whatsapp_analytics_cron=0\s+23\s+\*\s+must\s+be\s+a\s+cron\s+expression\s+of\s+five\s+fields",
    ),
    "n8n: whatsapp database owned by postgres": (
        "n8n", {**WHATSAPP_OK, "n8n_whatsapp_database_user": "postgres"},
        r"n8n_whatsapp_database\s+and\s+n8n_whatsapp_database_user\s+must\s+be\s+lower-case\s+names,\s+and\s+the\s+user\s+not\s+postgres",
    ),
    "n8n: whatsapp no public host name": (
        "n8n", {**WHATSAPP_OK, "n8n_hostname": ""},
        r"n8n\s+needs\s+n8n_hostname\s+\(or\s+n8n_dev_port",
    ),
    "n8n: whatsapp send tries not a number": ("n8n", {"n8n_whatsapp_send_tries": "three"}, r"n8n_whatsapp_send_tries.*int"),
    "ollama: unknown gpus value": ("ollama", {"ollama_gpus": "some"}, r"ollama_gpus=some must be auto, all, none or a list"),
    "ollama: keep_alive not a duration": ("ollama", {"ollama_keep_alive": "forever"}, r"ollama_keep_alive \(forever\) must be a Go duration"),
    "ollama: num_parallel not an int": ("ollama", {"ollama_num_parallel": "many"}, r"ollama_num_parallel.*int"),
    "ollama: negative context length": ("ollama", {"ollama_context_length": -1}, r"ollama_context_length \(-1\) must be >= 0"),
    "ollama: bad model name": ("ollama", {"ollama_models": ["llama 3"]}, r"ollama_models holds names Ollama cannot pull.*llama 3"),
    "ollama: models not a list": ("ollama", {"ollama_models": {"llama3.2": "1b"}}, r"ollama_models.*list"),
    "comfyui: gpus as a dict": ("comfyui", {"comfyui_gpus": {"count": 1}}, r"comfyui_gpus=.*must be auto, all, none or a list"),
    "comfyui: --port in cli args": ("comfyui", {"comfyui_cli_args": ["--port", "9000"]}, r"--port is\s+fixed at 8188"),
    "comfyui: cli arg with a space": ("comfyui", {"comfyui_cli_args": ["--preview-method auto"]}, r"comfyui_cli_args items must be\s+single words"),
    "comfyui: bad cache volume name": ("comfyui", {"comfyui_models_cache_volume": "my cache"}, r"comfyui_models_cache_volume=my cache is not a Docker volume name"),
    "monitoring: retention not a duration": ("monitoring", {"monitoring_prometheus_retention": "2 weeks"}, r"monitoring_prometheus_retention=2 weeks.*must be Prometheus durations"),
    "monitoring: disk threshold above 100": ("monitoring", {"monitoring_alert_disk_used_percent": 120}, r"monitoring_alert_disk_used_percent \(120\).*must be within 1-100"),
    "monitoring: scrape job name taken": (
        "monitoring", {"monitoring_extra_scrape_configs": [{"job_name": "node", "static_configs": [{"targets": ["x:9100"]}]}]},
        r"monitoring_extra_scrape_configs entries need a job_name that no other job uses",
    ),
    "monitoring: boot alert sooner than a boot": ("monitoring", {"monitoring_alert_boot_seconds": 10}, r"monitoring_alert_boot_seconds \(10\) 60 or more"),
    "monitoring: alertmanager without receivers": ("monitoring", {"monitoring_alertmanager_enabled": True}, r"monitoring_alertmanager_receivers is empty"),
    "monitoring: slack receiver without webhook": (
        "monitoring", {"monitoring_alertmanager_enabled": True, "monitoring_alertmanager_receivers": [{"name": "chat", "type": "slack"}]},
        r"Receiver chat \(slack\).*needs webhook_url",
    ),
    "monitoring: unknown receiver type": (
        "monitoring", {"monitoring_alertmanager_enabled": True, "monitoring_alertmanager_receivers": [{"name": "pd", "type": "pagerduty"}]},
        r"type.*(one of|email)",
    ),
    "monitoring: grafana setting not GF_": ("monitoring", {"monitoring_grafana_env_extra": {"SMTP_HOST": "smtp"}}, r"monitoring_grafana_env_extra keys must be.*SMTP_HOST"),
    # Several hosts: the server's remote hosts, and the agent-only mode.
    "monitoring: remote host without an address": (
        "monitoring", {"monitoring_remote_hosts": [{"name": "worker-1"}]}, r"missing required arguments: address found in monitoring_remote_hosts"),
    "monitoring: remote host with an unknown key": (
        "monitoring", {"monitoring_remote_hosts": [{"name": "worker-1", "address": "10.0.0.3", "port": 9100}]},
        r"monitoring_remote_hosts\.port\. Supported parameters include: address, name"),
    "monitoring: remote host named twice": (
        "monitoring", {"monitoring_remote_hosts": [{"name": "worker-1", "address": "10.0.0.3"}, {"name": "worker-1", "address": "10.0.0.4"}]},
        r"monitoring_remote_hosts: name worker-1 is listed more than once \(names must be unique\)"),
    "monitoring: remote address listed twice": (
        "monitoring", {"monitoring_remote_hosts": [{"name": "worker-1", "address": "10.0.0.3"}, {"name": "worker-2", "address": "10.0.0.3"}]},
        r"monitoring_remote_hosts: address 10.0.0.3 is listed more than once"),
    "monitoring: remote address with a port": (
        "monitoring", {"monitoring_remote_hosts": [{"name": "worker-1", "address": "10.0.0.3:9100"}]},
        r"monitoring_remote_hosts: address 10.0.0.3:9100 must be an IP address \(that host's aistack_private_address\), without port"),
    "monitoring: remote address a range": (
        "monitoring", {"monitoring_remote_hosts": [{"name": "worker-1", "address": "10.0.0.0/24"}]},
        r"monitoring_remote_hosts: address 10.0.0.0/24 must be an IP address"),
    "monitoring: remote host name with a space": (
        "monitoring", {"monitoring_remote_hosts": [{"name": "worker 1", "address": "10.0.0.3"}]},
        r"monitoring_remote_hosts: name worker 1 must be a host name"),
    "monitoring: remote host is this host": (
        "monitoring", {"monitoring_remote_hosts": [{"name": "localhost", "address": "10.0.0.3"}]},
        r"monitoring_remote_hosts: name localhost is this host \(its own targets are labelled host=localhost already\)"),
    "monitoring: remote hosts on an agent": (
        "monitoring", {"monitoring_server": False, "monitoring_remote_hosts": [{"name": "worker-1", "address": "10.0.0.3"}]},
        r"monitoring_remote_hosts is set but monitoring_server is false: only the monitoring server scrapes"),
    "monitoring: agent with no agent": (
        "monitoring", {"monitoring_server": False, "monitoring_node_exporter_enabled": False, "monitoring_cadvisor_enabled": False},
        r"monitoring_server is false \(agents only\) but monitoring_node_exporter_enabled and monitoring_cadvisor_enabled are\s+both false"),
    "monitoring: server not a bool": ("monitoring", {"monitoring_server": "sometimes"}, r"monitoring_server.*bool"),
    "fastapi_celery: no postgres for its database": (
        "fastapi_celery", {}, r"The app's database app \(owner app\) is created by\s+aistack.hosting.postgres.*before fastapi_celery",
    ),
    "fastapi_celery: no redis": (
        "fastapi_celery", {"postgres_enabled": True},
        r"Celery broker is Redis.*add the redis role\s+before fastapi_celery",
    ),
    "fastapi_celery: neither web nor workers": (
        "fastapi_celery", {"fastapi_celery_web_enabled": False, "fastapi_celery_workers": []},
        r"fastapi_celery_web_enabled is false and fastapi_celery_workers is empty",
    ),
    "common: private service unknown": (
        "fastapi_celery", {"aistack_private_services": ["mysql"]}, r"aistack_private_services.*(one of|choices)",
    ),
    "common: remote services not a dict": ("fastapi_celery", {"aistack_remote_services": ["postgres"]}, r"aistack_remote_services.*dict"),
    "fastapi_celery: two build sources": (
        "fastapi_celery", {"fastapi_celery_build_path": "/srv/app", "fastapi_celery_build_git_repo": "https://git.example.com/app.git"},
        r"at most one build source.*Clear the other one",
    ),
    "fastapi_celery: worker without queues": ("fastapi_celery", {"fastapi_celery_workers": [{"name": "cpu"}]}, r"queues.*fastapi_celery_workers"),
    "fastapi_celery: worker concurrency 0": (
        "fastapi_celery", {"fastapi_celery_workers": [{"name": "cpu", "queues": ["render"], "concurrency": 0}]},
        r"fastapi_celery_workers needs entries like",
    ),
    "fastapi_celery: unknown gpus value": ("fastapi_celery", {"fastapi_celery_gpus": "some"}, r"fastapi_celery_gpus=some must be auto, all, none"),
    "fastapi_celery: half the S3 settings": ("fastapi_celery", {"fastapi_celery_s3_bucket": "out"}, r"S3 needs all of fastapi_celery_s3_endpoint"),
    "fastapi_celery: path prefix without slash": ("fastapi_celery", {"fastapi_celery_path_prefix": "api/"}, r"fastapi_celery_path_prefix empty or a path such as /api"),
    "fastapi_celery: worker names twice": (
        "fastapi_celery", {"fastapi_celery_workers": [{"name": "cpu", "queues": ["a"]}, {"name": "cpu", "queues": ["b"]}]},
        r"fastapi_celery_workers names must be unique"),
    "fastapi_celery: bad worker name": (
        "fastapi_celery", {"fastapi_celery_workers": [{"name": "CPU", "queues": ["render"]}]},
        r"fastapi_celery_workers needs entries like.*got\s+\{'name': 'CPU'"),
    "fastapi_celery: redis db above 15": ("fastapi_celery", {"fastapi_celery_redis_db": 16}, r"fastapi_celery_redis_db=16 must be a Redis database 0-15"),
    "monitoring: alert rule group without rules": (
        "monitoring", {"monitoring_extra_alert_rules": [{"name": "mine"}]},
        r"monitoring_extra_alert_rules entries are Prometheus rule groups.*got keys \['name'\]"),
    "monitoring: email receiver without smtp": (
        "monitoring", {"monitoring_alertmanager_enabled": True, "monitoring_alertmanager_receivers": [{"name": "mail", "type": "email", "to": "ops@example.com"}]},
        r"Receiver mail \(email\) in monitoring_alertmanager_receivers is incomplete"),
    "monitoring: receiver names twice": (
        "monitoring", {"monitoring_alertmanager_enabled": True,
                       "monitoring_alertmanager_receivers": [{"name": "hook", "type": "webhook", "url": "https://a.example.com"},
                                                             {"name": "hook", "type": "webhook", "url": "https://b.example.com"}]},
        r"monitoring_alertmanager_receivers names must be unique; got hook, hook"),
    "monitoring: alertmanager host name without alertmanager": (
        "monitoring", {"monitoring_alertmanager_hostname": "alerts.example.com"}, r"monitoring_alertmanager_hostname is set but monitoring_alertmanager_enabled is false"),
    "monitoring: dashboards dir missing": (
        "monitoring", {"monitoring_grafana_dashboards_dir": "/nonexistent/dashboards"},
        r"monitoring_grafana_dashboards_dir=/nonexistent/dashboards is not a directory on the controller"),
    "ollama: host name with a space": ("ollama", {"ollama_hostname": "my ollama"}, r"ollama_hostname=my ollama must be a host name"),
    "comfyui: web user with a space": (
        "comfyui", {"comfyui_hostname": "comfyui.example.com", "comfyui_web_user": "my user"}, r"comfyui_web_user=my user letters, digits"),
    "single_container: n8n image tag differs": (
        "single_container", {"single_container_n8n_image": "n8nio/n8n:latest"},
        r"single_container_n8n_image \(n8nio/n8n:latest\) must be tagged\s+single_container_n8n_version=2.41.1",
    ),
    "single_container: privileged port": ("single_container", {"single_container_port": 80}, r"single_container_port \(80\) must be within 1024-65535"),
    "single_container: port not an int": ("single_container", {"single_container_port": "web"}, r"single_container_port.*int"),
    "single_container: unknown db type": ("single_container", {"single_container_db_type": "mysql"}, r"single_container_db_type.*(one of|sqlite)"),
    "single_container: postgres without host": (
        "single_container", {"single_container_db_type": "postgresdb"}, r"set single_container_db_host and single_container_db_password",
    ),
    "single_container: public URL without scheme": (
        "single_container", {"single_container_public_url": "agents.example.com"}, r"single_container_public_url=agents.example.com is not an http\(s\) URL",
    ),
    # The owner account and the runtime base (single_container_owner_email is checked last).
    "single_container: owner email missing": ("single_container", {}, r"single_container_owner_email must be the e-mail of n8n's owner account"),
    "single_container: owner email not an address": (
        "single_container", {"single_container_owner_email": "owner"}, r"single_container_owner_email must be",
    ),
    "single_container: owner password n8n would refuse": (
        "single_container", {"single_container_owner_email": "owner@example.com", "single_container_owner_password": "alllowercase1"},
        r"single_container_owner_password \(Vault\) must be empty \(generated once\) or 8-64 characters",
    ),
    "single_container: base image without a tag": (
        "single_container", {"single_container_owner_email": "owner@example.com", "single_container_base_image": "python"},
        r"single_container_base_image \(python\) must carry a pinned tag",
    ),
    "single_container: base image latest": (
        "single_container", {"single_container_owner_email": "owner@example.com", "single_container_base_image": "python:latest"},
        r"single_container_base_image \(python:latest\) must carry",
    ),
    "single_container: agent OS packages not a list": (
        "single_container", {"single_container_owner_email": "owner@example.com", "single_container_agent_os_packages": {"ffmpeg": 1}},
        r"single_container_agent_os_packages.*list",
    ),
    "single_container: credential without id": (
        "single_container", {"single_container_credentials": [{"name": "api", "type": "httpHeaderAuth", "data": {}}]},
        r"single_container_credentials needs entries like",
    ),
    "single_container: space without owner": (
        "single_container", {"single_container_hf_space": "n8n-agent", "single_container_hf_token": "hf_x"},
        r"single_container_hf_space \(n8n-agent\) must be owner/name",
    ),
    "single_container: agent directory missing": (
        "single_container", {"single_container_agent_src": "/nonexistent/agent"},
        r"single_container_agent_src \(/nonexistent/agent\) and single_container_workflows_dir.*must be directories on the controller",
    ),
    "railway_n8n: token missing": ("railway_n8n", {}, r"railway_n8n_token is empty.*put it in Vault"),
    "railway_n8n: encryption key missing": (
        "railway_n8n", {"railway_n8n_token": "t"}, r"railway_n8n_encryption_key is empty.*only other copy\s+would be on Railway's volume",
    ),
    "railway_n8n: unpinned image": (
        "railway_n8n", {**RAILWAY_OK, "railway_n8n_image": "n8nio/n8n:latest"},
        r"railway_n8n_image\s+\(n8nio/n8n:latest\) an image with a pinned tag",
    ),
    "railway_n8n: no workers": (
        "railway_n8n", {**RAILWAY_OK, "railway_n8n_workers": 0},
        r"railway_n8n_workers \(0\) must be >= 1",
    ),
    "railway_n8n: no owner (the first visitor would claim n8n)": (
        "railway_n8n", {"railway_n8n_token": "t", "railway_n8n_encryption_key": "k" * 32},
        r"n8n on Railway needs railway_n8n_owner_email and railway_n8n_owner_password"),
    "railway_n8n: n8n too old to create its owner at startup": (
        "railway_n8n", {**RAILWAY_OK, "railway_n8n_image": "n8nio/n8n:2.16.3"}, r"needs n8n 2.17 or later"),
    "railway_n8n: queue mode not a bool": ("railway_n8n", {"railway_n8n_queue_mode": "sometimes"}, r"railway_n8n_queue_mode.*bool"),
    # The machines running these tests have no GPU.
    "nvidia_toolkit: required without a GPU": (
        "nvidia_toolkit", {"nvidia_toolkit_required": True},
        r"nvidia_toolkit_required is true but this host has no NVIDIA GPU.*nvidia_toolkit_required: false",
    ),
    "nvidia_toolkit: unknown driver source": ("nvidia_toolkit", {"nvidia_toolkit_driver_source": "runfile"}, r"nvidia_toolkit_driver_source.*one of"),
    "nvidia_toolkit: repo URL without scheme": (
        "nvidia_toolkit", {"nvidia_toolkit_repo_url": "mirror.example.com/nvidia"}, r"nvidia_toolkit_repo_url=mirror.example.com/nvidia is not",
    ),
    "nvidia_toolkit: key neither URL, path nor key": ("nvidia_toolkit", {"nvidia_toolkit_repo_key": "nvidia.gpg"}, r"nvidia_toolkit_repo_key must be a key URL"),
    "nvidia_toolkit: version without revision": ("nvidia_toolkit", {"nvidia_toolkit_version": "1.17.8"}, r"nvidia_toolkit_version=\"1.17.8\" is not a full package version"),
    "nvidia_toolkit: required not a bool": ("nvidia_toolkit", {"nvidia_toolkit_required": "sometimes"}, r"nvidia_toolkit_required.*bool"),
    # Host perimeter (issue 13, item 7).
    "firewall: port out of range": ("firewall", {"firewall_allowed_tcp_ports": [80, 70000]}, r"Ports must be within 1-65535; out of range: 70000"),
    "firewall: port not an int": ("firewall", {"firewall_allowed_udp_ports": ["dns"]}, r"firewall_allowed_udp_ports.*int"),
    "firewall: ssh source not an address": (
        "firewall", {"firewall_ssh_allowed_sources": ["10.0.0.0/8", "office"]}, r"firewall_ssh_allowed_sources takes IPv4/IPv6.*not addresses: office",
    ),
    "firewall: ssh port out of range": ("firewall", {"firewall_ssh_port": 0}, r"out of range: 0.*firewall_ssh_port"),
    "firewall: rollback window too short": ("firewall", {"firewall_rollback_seconds": 3}, r"firewall_rollback_seconds \(3\) must be 10 or more"),
    "firewall: interface name too long": (
        "firewall", {"firewall_trusted_interfaces": ["a-very-long-interface-name"]}, r"firewall_trusted_interfaces takes interface names",
    ),
    "firewall: port source not an address": (
        "firewall", {"firewall_allowed_tcp_sources": [{"port": 5432, "sources": ["10.0.0.3", "data-host"]}]},
        r"firewall_allowed_tcp_sources.*fix: data-host",
    ),
    "firewall: port source rule without sources": (
        "firewall", {"firewall_allowed_tcp_sources": [{"port": 5432}]}, r"firewall_allowed_tcp_sources.*sources",
    ),
    "firewall: layout source rule port out of range": (
        "firewall", {"firewall_layout_tcp_sources": [{"port": 70000, "sources": ["10.0.0.3"]}]},
        r"firewall_layout_tcp_sources.*fix: .*70000",
    ),
    "firewall: layout UDP port out of range": ("firewall", {"firewall_layout_udp_ports": [0]}, r"out of range: 0.*firewall_layout_udp_ports"),
    "ssh_hardening: root login yes": ("ssh_hardening", {"ssh_hardening_permit_root_login": "yes"}, r"ssh_hardening_permit_root_login.*one of"),
    "ssh_hardening: max auth tries 0": ("ssh_hardening", {"ssh_hardening_max_auth_tries": 0}, r"ssh_hardening_max_auth_tries \(0\) must be 1 or more"),
    "ssh_hardening: option keyword with a space": (
        "ssh_hardening", {"ssh_hardening_options": {"Allow Groups": "ssh"}}, r"ssh_hardening_options takes \{Keyword: value\} pairs",
    ),
    "unattended_upgrades: reboot time not HH:MM": (
        "unattended_upgrades", {"unattended_upgrades_reboot_time": "4am"}, r"unattended_upgrades_reboot_time=4am is not a time HH:MM",
    ),
    "unattended_upgrades: negative interval": (
        "unattended_upgrades", {"unattended_upgrades_upgrade_days": -1}, r"unattended_upgrades_upgrade_days.*not negative",
    ),
    "unattended_upgrades: origin with a quote": (
        "unattended_upgrades", {"unattended_upgrades_origins_patterns": ['origin=Debian";']},
        r"unattended_upgrades_origins_patterns.*must not contain quotes",
    ),
    # Weak operator-supplied secrets (the weak_secrets filter, first check of every preflight).
    "traefik: dashboard password placeholder": (
        "traefik", {"traefik_dashboard_password": "change-me"}, r"traefik_dashboard_password is a placeholder from an example",
    ),
    "traefik: cloudflare token from the example": (
        "traefik", {"traefik_cloudflare_dns_api_token": "cf-token-with-zone-dns-edit"},
        r"traefik_cloudflare_dns_api_token is a placeholder",
    ),
    "n8n: encryption key from vault.yml.example": (
        "n8n", {"n8n_encryption_key": "change-me-32-random-characters"}, r"n8n_encryption_key is a placeholder from an example",
    ),
    "n8n: short owner password": (
        "n8n", {"n8n_owner_password": "Sh0rt-pw"}, r"n8n_owner_password is shorter than 12 characters \(aistack_secret_min_length\)",
    ),
    "n8n: jwt secret not a string": ("n8n", {"n8n_jwt_secret": 1234567890123}, r"n8n_jwt_secret.*(must be a string|str)"),
    "postgres: superuser password placeholder": (
        "postgres", {"postgres_superuser_password": "Password123456"}, r"postgres_superuser_password is a placeholder",
    ),
    "redis: short password": ("redis", {"redis_password": "r3d1s-pw"}, r"redis_password is shorter than 12 characters"),
    "redis: longer minimum length": (
        "redis", {"redis_password": "r3d1s-pw-0123456", "aistack_secret_min_length": 20}, r"redis_password is shorter than 20 characters",
    ),
    "monitoring: grafana password placeholder": (
        "monitoring", {"monitoring_grafana_admin_password": "changeme"}, r"monitoring_grafana_admin_password is a placeholder",
    ),
    "ollama: web password placeholder": ("ollama", {"ollama_web_password": "admin"}, r"ollama_web_password is a placeholder"),
    "comfyui: short web password": ("comfyui", {"comfyui_web_password": "c0mfy-pw"}, r"comfyui_web_password is shorter than 12"),
    "fastapi_celery: basic auth placeholder": (
        "fastapi_celery", {"fastapi_celery_basic_auth_password": "secret-secret"}, r"fastapi_celery_basic_auth_password is a placeholder",
    ),
    "railway_n8n: short encryption key": ("railway_n8n", {"railway_n8n_encryption_key": "k3y-short"}, r"railway_n8n_encryption_key is shorter than 12"),
    "single_container: owner password placeholder": (
        "single_container", {"single_container_owner_password": "your-password-here"}, r"single_container_owner_password is a placeholder",
    ),
    # backup: the repositories must be usable from another machine after this one is gone.
    "backup: off-host target without a repository password": (
        "backup", {"backup_targets": [BACKUP_S3]}, r"backup_password is missing: with an off-host target"),
    "backup: unknown target type": (
        "backup", {"backup_targets": [{"name": "ftp", "type": "ftp", "path": "/x"}]}, r"backup_targets.*(local, sftp, s3)"),
    "backup: retention that keeps nothing": (
        "backup", {"backup_retention": {"daily": 0, "weekly": 0}}, r"backup_retention keeps no snapshot"),
    "backup: retention with an unknown policy": (
        "backup", {"backup_retention": {"daily": 7, "forever": 1}}, r"backup_retention: forever not a restic keep policy"),
    "backup: S3 without credentials": (
        "backup", {"backup_password": BACKUP_PASSWORD, "backup_targets": [{**BACKUP_S3, "secret_access_key": ""}]},
        r"backup_targets\[offsite-s3\].secret_access_key is missing"),
    "backup: SFTP without a host key": (
        "backup", {"backup_password": BACKUP_PASSWORD, "backup_targets": [{**BACKUP_SFTP, "host_key": ""}]},
        r"backup_targets\[offsite-sftp\].host_key is missing.*pinned"),
    "backup: SFTP host key as known_hosts line": (
        "backup", {"backup_password": BACKUP_PASSWORD, "backup_targets": [{**BACKUP_SFTP, "host_key": "vault " + BACKUP_HOST_KEY}]},
        r"backup_targets\[offsite-sftp\].host_key must be public host key lines"),
    "backup: local path relative": (
        "backup", {"backup_targets": [{"name": "local", "type": "local", "path": "backups"}]},
        r"backup_targets\[local\].path must be an absolute path"),
    "backup: two targets with one name": (
        "backup", {"backup_targets": [{"name": "local", "type": "local", "path": "/a"}, {"name": "local", "type": "local", "path": "/b"}]},
        r"backup_targets\[1\].name 'local' is used twice"),
    "backup: placeholder repository password": (
        "backup", {"backup_password": "change-me-please-now"}, r"backup_password is a placeholder"),
    "backup: max age of zero": ("backup", {"backup_max_age_hours": 0}, r"backup_max_age_hours and backup_check_max_age_hours must be at least 1"),
    "backup: restore from an unknown target": (
        "backup", {"backup_restore_target": "nas"}, r"backup_restore_target nas is not the name of a backup_targets entry"),
    "backup: targets not a list": ("backup", {"backup_targets": "s3://bucket"}, r"backup_targets.*list"),
    # object_storage: every rule of its preflight (and argument_specs) names the variable.
    "object_storage: bucket name not S3": (
        "object_storage", {"object_storage_buckets": [{"name": "Media_Files", "consumer": "backup"}]},
        r"object_storage_buckets: Media_Files \(from object_storage_buckets\) is not a valid S3 bucket name"),
    "object_storage: bucket name with two dots": (
        "object_storage", {"object_storage_buckets": [{"name": "media..files", "consumer": "backup"}]},
        r"object_storage_buckets: media\.\.files .*is not a valid S3 bucket name"),
    "object_storage: bucket listed twice": (
        "object_storage", {"object_storage_buckets": [{"name": "aistack-backups", "consumer": "backup"},
                                                      {"name": "aistack-backups", "consumer": "analytics"}]},
        r"object_storage_buckets: aistack-backups is listed more than once"),
    "object_storage: bucket owner not a name": (
        "object_storage", {"object_storage_buckets": [{"name": "aistack-backups", "consumer": "Backup Team"}]},
        r"object_storage_buckets: the consumer of aistack-backups must be lower-case letters"),
    "object_storage: consumer listed twice": (
        "object_storage", {"object_storage_buckets": [{"name": "aistack-backups", "consumer": "backup"}],
                           "object_storage_consumers": [{"name": "analytics", "buckets": []}, {"name": "analytics", "buckets": []}]},
        r"object_storage_consumers: analytics is listed more than once"),
    "object_storage: consumer of an unknown bucket": (
        "object_storage", {"object_storage_consumers": [{"name": "analytics", "buckets": ["nowhere"]}]},
        r"object_storage_consumers names buckets no one creates: nowhere"),
    "object_storage: consumer without a name": (
        "object_storage", {"object_storage_consumers": [{"buckets": ["nowhere"]}]}, r"object_storage_consumers.*name"),
    "object_storage: volume size limit zero": (
        "object_storage", {"object_storage_volume_size_limit_mb": 0}, r"object_storage_volume_size_limit_mb \(0\) must be within 1-30000"),
    "object_storage: metrics on the S3 port": (
        "object_storage", {"object_storage_metrics_port": 8333}, r"object_storage_metrics_port \(8333\) must be 0 \(no metrics\) or a TCP port"),
    "object_storage: host name with a space": (
        "object_storage", {"object_storage_hostname": "s3 example.com"}, r"object_storage_hostname=s3 example.com must be a host name"),
    "object_storage: allow-list entry not a range": (
        "object_storage", {"object_storage_ip_allowlist": ["office"]}, r"object_storage_ip_allowlist holds what is not an address or CIDR range: office"),
    "object_storage: admin secret key placeholder": (
        "object_storage", {"object_storage_admin_secret_key": "change-me-please-now"}, r"object_storage_admin_secret_key is a placeholder"),
    "upgrade: keep nothing": ("upgrade", {"upgrade_keep": 0}, r"upgrade_keep must be 1 or more"),
    "upgrade: gate timeout too short": ("upgrade", {"upgrade_gate_timeout_seconds": 5}, r"upgrade_gate_timeout_seconds must be 10 or more"),
    "upgrade: smoke check without a scheme": (
        "upgrade", {"upgrade_smoke_checks": [{"url": "n8n.example.com/webhook/health"}]},
        r"upgrade_smoke_checks: every url must start with http:// or https://"),
    "upgrade: smoke check without a url": ("upgrade", {"upgrade_smoke_checks": [{"status": 200}]}, r"upgrade_smoke_checks.*url"),
    "open_webui: no host name": ("open_webui", {**OPEN_WEBUI_OK, "open_webui_hostname": ""}, r"open_webui_hostname is empty: set it"),
    "open_webui: host name with a space": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_hostname": "chat example"}, r"open_webui_hostname=chat example must be a host name",
    ),
    "open_webui: no admin e-mail": ("open_webui", {**OPEN_WEBUI_OK, "open_webui_admin_email": ""}, r"open_webui_admin_email is required"),
    "open_webui: weak admin password": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_admin_password": "changeme"}, r"open_webui_admin_password",
    ),
    "open_webui: admin as the default role": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_default_user_role": "admin"}, r"open_webui_default_user_role.*(one of|pending)",
    ),
    "open_webui: no ollama anywhere": (
        "open_webui", {**OPEN_WEBUI_OK, "ollama_enabled": False}, r"open_webui_ollama_urls is empty and this play runs no ollama role",
    ),
    "open_webui: ollama url without scheme": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_ollama_urls": ["ollama:11434"]}, r"open_webui_ollama_urls: ollama:11434 must be http\(s\)",
    ),
    "open_webui: unknown embedding engine": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_embedding_engine": "cohere"}, r"open_webui_embedding_engine=cohere must be ollama, openai",
    ),
    "open_webui: no postgres role": (
        "open_webui", {**OPEN_WEBUI_OK, "postgres_enabled": False}, r"open_webui needs its database on the postgres role",
    ),
    "open_webui: database name not SQL": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_database": "Open-WebUI"}, r"open_webui_database and open_webui_database_user must be lowercase",
    ),
    "open_webui: oidc without a client": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_oidc_enabled": True,
                       "open_webui_oidc_provider_url": "https://idp.example.com/.well-known/openid-configuration"},
        r"open_webui_oidc_enabled needs open_webui_oidc_provider_url",
    ),
    "open_webui: oidc only without oidc": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_oidc_only": True}, r"open_webui_oidc_only needs open_webui_oidc_enabled",
    ),
    "open_webui: start period not a duration": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_start_period": "2 minutes"}, r"open_webui_start_period=2 minutes must be a Go duration",
    ),
    "open_webui: wait shorter than the start period": (
        "open_webui", {**OPEN_WEBUI_OK, "open_webui_start_period": "10m"}, r"open_webui_wait_timeout=300 seconds at least that long",
    ),
    # wireguard: every rule of its preflight names the variable (localhost is in group all, not in multi_hosts).
    "wireguard: enabled without an address": ("wireguard", {"wireguard_enabled": True}, r"wireguard_address is empty: give each host of\s+wireguard_peers_group"),
    "wireguard: address outside the network": (
        "wireguard", {**WIREGUARD_OK, "wireguard_address": "10.78.0.1"},
        r"wireguard_address=10.78.0.1 is not a host address inside wireguard_network=10.77.0.0/24"),
    "wireguard: the network's own address": (
        "wireguard", {**WIREGUARD_OK, "wireguard_address": "10.77.0.0"}, r"wireguard_address=10.77.0.0 is not a host address inside"),
    "wireguard: network with host bits": (
        "wireguard", {**WIREGUARD_OK, "wireguard_network": "10.77.0.5/24"}, r"wireguard_network=10.77.0.5/24 must be an IPv4 network"),
    "wireguard: port out of range": ("wireguard", {**WIREGUARD_OK, "wireguard_port": 70000}, r"wireguard_port \(70000\) must be a UDP port 1-65535"),
    "wireguard: negative keepalive": (
        "wireguard", {**WIREGUARD_OK, "wireguard_persistent_keepalive": -1}, r"wireguard_persistent_keepalive\s+\(-1\) 0 \(none\)"),
    "wireguard: interface name too long": (
        "wireguard", {**WIREGUARD_OK, "wireguard_interface": "wireguard-mesh-0"}, r"wireguard_interface=wireguard-mesh-0 must be 1-15 characters"),
    "wireguard: unknown implementation": ("wireguard", {"wireguard_implementation": "boringtun"}, r"wireguard_implementation.*(one of|auto, kernel, userspace)"),
    "wireguard: host outside the peers group": (
        "wireguard", {**WIREGUARD_OK, "wireguard_peers_group": "multi_hosts"},
        r"localhost is not in the inventory group wireguard_peers_group=multi_hosts\s+\(which does not exist\)"),
    "wireguard: endpoint with a port": (
        "wireguard", {**WIREGUARD_OK, "wireguard_endpoint": "203.0.113.7:51820"},
        r"wireguard_endpoint=203.0.113.7:51820 is not an IP address or DNS name.*\(no port: that is wireguard_port\)"),
}
SECRET_NAME = re.compile(r"(password|token|secret|encryption_key)$")  # not e.g. nvidia_toolkit_repo_key (a key URL)


@pytest.fixture(scope="module")
def playbook(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bad_input") / "play.yml"
    path.write_text(PLAYBOOK)
    return path


def ansible_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_LOCALHOST_WARNING": "false"}


# Most cases run together: one ansible-playbook over one inventory host per case
# (the case's input as its host vars), each host including its role, so every
# host fails (or not) on its own. One start of Ansible instead of ~240 (the
# unit stage's largest cost). Cases that are about the host itself (its name,
# the wireguard mesh of group `all`) run alone against localhost, as before.
BATCH_PLAYBOOK = """
- hosts: cases
  gather_facts: false
  tasks:
    - name: Run the role under test
      ansible.builtin.include_role:
        name: "aistack.hosting.{{ role_under_test }}"
"""
RESULT_LINE = re.compile(r"^(\w+): \[([^\]]+)\]")
CASE_RECAP = re.compile(r"^(case-\d+)\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.M)


def runs_alone(role: str, message: str) -> bool:
    return role == "wireguard" or "localhost" in message


@dataclass
class Outcome:
    """What one case's run printed: everything its secrets must not be in (alone: the whole output;
    batched: its own part and the lines of no host, not other hosts' errors, which print the
    specs' own examples such as change-me), the host's own part, its recap and last task."""

    output: str
    own: str
    changed: str
    failed: str
    last_task: str


def split_by_host(output: str) -> dict[str, tuple[str, str]]:
    """Each host's result blocks (with their task headers) and the task of its last result;
    under "" the lines of no host (play headers, warnings, the recap)."""
    parts: dict[str, list[str]] = {}
    last: dict[str, str] = {}
    task, current, error = "", None, []
    for line in output.splitlines():
        match = RESULT_LINE.match(line)
        if line.startswith("TASK ["):
            parts.setdefault("", []).extend(error)  # an [ERROR] of no host's result
            task, current, error = line[6:line.rfind("]")], None, []
        elif match:
            # ansible-core 2.19 prints a failure's message as an [ERROR] (no host name) just before its result.
            current = match.group(2)
            parts.setdefault(current, []).extend([f"TASK [{task}]", *error, line])
            last[current], error = task, []
        elif line.startswith("[ERROR]"):
            current, error = None, [line]
        elif error:
            error.append(line)
        elif current is not None and (line.startswith(" ") or not line.strip()):
            parts[current].append(line)
        else:
            current = None
        if current is None and not error and not match:
            parts.setdefault("", []).append(line)
    parts.setdefault("", []).extend(error)
    return {host: ("\n".join(lines), last.get(host, "")) for host, lines in parts.items()}


# Two batches, so both pytest-xdist workers work: whichever worker first needs a
# batch runs it (under a lock) and leaves its outcomes for the other.
BATCHES = 2
BATCHED = [case_id for case_id, (role, _extra, message) in CASES.items() if not runs_alone(role, message)]


def batch_number(case_id: str) -> int:
    return BATCHED.index(case_id) % BATCHES


@pytest.fixture(scope="session")
def batches_dir(tmp_path_factory) -> Path:
    """A directory every xdist worker of this run shares (their base temps' parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def batch_outcomes(shared: Path, number: int) -> dict[str, Outcome]:
    done = shared / f"bad_input_batch_{number}.json"
    with open(shared / f"bad_input_batch_{number}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            outcomes = run_batch(number)
            done.write_text(json.dumps({case_id: asdict(outcome) for case_id, outcome in outcomes.items()}))
    return {case_id: Outcome(**fields) for case_id, fields in json.loads(done.read_text()).items()}


def run_batch(number: int) -> dict[str, Outcome]:
    """Run one batch's cases in one ansible-playbook; the outcome of each, by case id."""
    cases = [case_id for case_id in BATCHED if batch_number(case_id) == number]
    hosts = {case_id: f"case-{index}" for index, case_id in enumerate(cases)}
    inventory = {"cases": {"hosts": {hosts[case_id]: {"role_under_test": CASES[case_id][0], **CASES[case_id][1]}
                                     for case_id in cases},
                           "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
    with tempfile.TemporaryDirectory(prefix="bad_input_batch") as work:
        (Path(work) / "inventory.json").write_text(json.dumps(inventory))
        (Path(work) / "play.yml").write_text(BATCH_PLAYBOOK)
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--check",
                               "-i", str(Path(work) / "inventory.json"), str(Path(work) / "play.yml")],
                              cwd=ROOT, env=ansible_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
    output = proc.stdout  # one stream: each [ERROR] stays right before its host's result
    own = split_by_host(output)
    recaps = {host: (changed, failed) for host, changed, failed in CASE_RECAP.findall(output)}
    no_host = own.get("", ("", ""))[0]
    outcomes = {}
    for case_id, host in hosts.items():
        text, last_task = own.get(host, ("", ""))
        changed, failed = recaps.get(host, ("?", "?"))
        outcomes[case_id] = Outcome(no_host + "\n" + text, text, changed, failed, last_task)
    return outcomes


def run_on_localhost(playbook: Path, role: str, extra_vars: dict, *args: str) -> subprocess.CompletedProcess:
    """The role with this input against the local machine, in check mode."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--check", "-i", "localhost,", str(playbook), *args,
         "-e", json.dumps({"role_under_test": role, **extra_vars}), "-e", f"ansible_python_interpreter={sys.executable}"],
        cwd=ROOT, env=ansible_env(), text=True, capture_output=True, timeout=300,
    )


def run_alone(playbook: Path, role: str, extra_vars: dict) -> Outcome:
    proc = run_on_localhost(playbook, role, extra_vars)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    recap = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+).*?failed=(\d+)", output)
    tasks = re.findall(r"TASK \[([^\]]+)\]", output)
    return Outcome(output, output, recap.group(1) if recap else "?", recap.group(2) if recap else "?", tasks[-1] if tasks else "")


@pytest.mark.parametrize("case_id", CASES)
def test_bad_input_fails_early_and_names_the_variable(playbook, batches_dir, case_id):
    role, extra_vars, message = CASES[case_id]
    if case_id in BATCHED:
        outcome = batch_outcomes(batches_dir, batch_number(case_id))[case_id]
    else:
        outcome = run_alone(playbook, role, extra_vars)
    # The YAML callback folds long messages at a width: match them folded or unfolded.
    assert re.search(message, outcome.own, re.S) or re.search(message, re.sub(r"\n\s+", " ", outcome.own), re.S), \
        outcome.own or outcome.output
    # A rejected secret is named, never printed.
    for name, value in extra_vars.items():
        if SECRET_NAME.search(name) and isinstance(value, str) and len(value) >= 8:
            assert value not in outcome.output, f"{name}'s value is in the output"
    # Failed before anything changed, in argument validation or a preflight check.
    assert (outcome.changed, outcome.failed) == ("0", "1"), outcome.own or outcome.output
    assert "Validating arguments" in outcome.last_task or "Check " in outcome.last_task, outcome.last_task


# The other half: the base input of a role's cases passes its preflight, so each
# case above fails for its own reason (a check that refuses everything would pass
# them all). Only the preflight runs: `--tags uninstall` with the role enabled.
GOOD_INPUT = {
    "wireguard": {**WIREGUARD_OK, "wireguard_network": "10.77.0.0/16", "wireguard_address": "10.77.3.254", "wireguard_interface": "mesh0",
                  "wireguard_port": 51821, "wireguard_persistent_keepalive": 25, "wireguard_mtu": 1380, "wireguard_endpoint": "2001:db8::7"},
    "open_webui": {**OPEN_WEBUI_OK, "open_webui_admin_email": "ops.team@aistack.example",
                   "open_webui_ollama_urls": ["http://gpu-1.internal:11434", "https://ollama.example.com"],
                   "open_webui_oidc_enabled": True, "open_webui_oidc_client_id": "chat", "open_webui_oidc_client_secret": "s3cr3t-from-vault",
                   "open_webui_oidc_provider_url": "https://sso.example.com/realms/staff/.well-known/openid-configuration"},
    "monitoring": {"monitoring_remote_hosts": [{"name": "worker-1", "address": "10.0.0.3"}, {"name": "gpu-1.internal", "address": "fd00::4"},
                                               {"name": "data_1", "address": "10.0.0.5"}]},
}
# The checks each role's good input must pass (not skip).
GOOD_CHECKS = {
    "open_webui": ["Check the open_webui settings"],
    "wireguard": ["Check the wireguard settings"],
    "monitoring": ["Check the monitoring settings"],
}


@pytest.mark.parametrize("role", GOOD_INPUT)
def test_good_input_passes_preflight(playbook, role):
    proc = run_on_localhost(playbook, role, GOOD_INPUT[role], "--tags", "uninstall")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    for check in GOOD_CHECKS[role]:
        assert re.search(rf"TASK \[aistack.hosting.{role} : {re.escape(check)}\] \**\n(.*\n)?ok: \[localhost\]", output), output


# wireguard's mesh-wide rule needs several hosts: two local ones sharing an address.
WIREGUARD_TWO_HOSTS = """
mesh:
  hosts:
    mesh-a: {wireguard_address: 10.77.0.1}
    mesh-b: {wireguard_address: 10.77.0.1}
    mesh-c: {wireguard_address: 10.77.0.3}
  vars: {ansible_connection: local, wireguard_enabled: true, wireguard_peers_group: mesh, wireguard_endpoint: 192.0.2.1}
"""


def test_wireguard_shared_address_names_the_hosts(tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(WIREGUARD_TWO_HOSTS)
    (tmp_path / "play.yml").write_text(PLAYBOOK.replace("hosts: localhost", "hosts: mesh"))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--check", "-i", str(inventory), str(tmp_path / "play.yml"),
         "-e", json.dumps({"role_under_test": "wireguard", "ansible_python_interpreter": sys.executable})],
        cwd=ROOT, env=ansible_env(), text=True, capture_output=True, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert re.search(r"wireguard_address 10.77.0.1 is used by more than one host:\s+mesh-a, mesh-b\.", output), output
    assert "10.77.0.3 is used" not in output, output
    for host in ("mesh-a", "mesh-b", "mesh-c"):
        assert re.search(host + r"\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=1", output), output
    assert re.findall(r"TASK \[([^\]]+)\]", output)[-1].endswith("Check the wireguard settings")
