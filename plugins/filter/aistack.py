# -*- coding: utf-8 -*-
# Copyright: aistack.hosting contributors
# Apache License 2.0 (see LICENSE)
# SPDX-License-Identifier: Apache-2.0
"""Filters shared by the service roles: Traefik labels and file-provider routes, htpasswd lines, compose env files, GPU
reservations, weak operator secrets, preflight input checks.

Documented in traefik_labels.yml, traefik_routes.yml, htpasswd.yml, compose_env.yml, gpu_devices.yml and weak_secrets.yml
beside this file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import posixpath
import re
from typing import Any, Iterable, Mapping, Sequence

APR1_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ROUTER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Traefik checks basic auth on every request: cost 10 is ~50 ms per request there,
# against ~10^4 guesses per second per core for apr1 (1000 MD5 rounds).
BCRYPT_COST = 10
B64_TO_BCRYPT = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                              "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _to64(value: int, count: int) -> str:
    out = []
    for _index in range(count):
        out.append(APR1_ALPHABET[value & 0x3F])
        value >>= 6
    return "".join(out)


def apr1(password: str, salt: str) -> str:
    """Apache's MD5-crypt ($apr1$), the htpasswd format Traefik and nginx accept."""
    pw, salt_b, magic = password.encode(), salt.encode()[:8], b"$apr1$"
    alternate = hashlib.md5(pw + salt_b + pw).digest()
    ctx = pw + magic + salt_b
    for i in range(len(pw)):
        ctx += alternate[i % 16:i % 16 + 1]
    i = len(pw)
    while i:
        ctx += b"\x00" if i & 1 else pw[:1]
        i >>= 1
    digest = hashlib.md5(ctx).digest()
    for round_ in range(1000):
        step = (pw if round_ & 1 else digest)
        if round_ % 3:
            step += salt_b
        if round_ % 7:
            step += pw
        step += digest if round_ & 1 else pw
        digest = hashlib.md5(step).digest()
    groups = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    encoded = "".join(_to64((digest[a] << 16) | (digest[b] << 8) | digest[c], 4) for a, b, c in groups)
    encoded += _to64(digest[11], 2)
    return f"$apr1${salt_b.decode()}${encoded}"


def bcrypt_hash(password: str, salt: bytes, cost: int = BCRYPT_COST) -> str:
    """`$2y$<cost>$...` (the htpasswd -B form Traefik checks) for a 16-byte salt."""
    return _bcrypt_hash(str(password), bytes(salt), int(cost))


# One hash costs ~65 ms at cost 10, and a task's templating may reach the same
# variable many times (n8n's compose file: once per process): each is hashed once.
@functools.lru_cache(maxsize=64)
def _bcrypt_hash(password: str, salt: bytes, cost: int) -> str:
    try:
        import bcrypt  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise ValueError("htpasswd: bcrypt hashes need the Python package 'bcrypt' on the controller "
                         "(pip install bcrypt, or pip install -r requirements.txt)") from exc
    if len(password.encode()) > 72:
        raise ValueError("htpasswd: bcrypt uses at most 72 bytes of a password and Traefik refuses longer ones; "
                         "use a basic-auth password of at most 72 bytes")
    # bcrypt's base64 is standard base64 (no padding) over its own alphabet.
    encoded = base64.b64encode(salt[:16]).decode().rstrip("=").translate(B64_TO_BCRYPT)
    hashed = bcrypt.hashpw(password.encode(), f"$2b${cost:02d}${encoded}".encode()).decode()
    return "$2y$" + hashed[4:]


def htpasswd(password: str, user: str, scheme: str = "bcrypt") -> str:
    """`user:<hash>` with a salt derived from password and user, so re-runs render the same line."""
    mac = hmac.new(password.encode(), f"aistack-htpasswd:{user}".encode(), hashlib.sha256).digest()
    if scheme == "bcrypt":
        return f"{user}:{bcrypt_hash(password, mac[:16])}"
    if scheme == "apr1":
        return f"{user}:{apr1(password, ''.join(APR1_ALPHABET[b & 0x3F] for b in mac[:8]))}"
    raise ValueError(f"htpasswd: scheme {scheme!r} must be bcrypt or apr1")


def bcrypt_password(password: str, user: str) -> str:
    """A `$2a$10$` bcrypt hash of an account's password (n8n's N8N_INSTANCE_OWNER_PASSWORD_HASH), with a
    salt derived from password and user: re-runs render the same hash, so nothing restarts for it."""
    if not password:
        raise ValueError("bcrypt_password: the password is empty")
    mac = hmac.new(password.encode(), f"aistack-bcrypt:{user}".encode(), hashlib.sha256).digest()
    return "$2a$" + bcrypt_hash(password, mac[:16])[4:]


# Above any rule-length priority Traefik computes for the stack's own routers.
DENY_PRIORITY = 10000
LOGIN_PRIORITY = 9000


def traefik_labels(
    name: str,
    hostname: str,
    port: int,
    network: str = "aistack",
    entrypoint: str = "websecure",
    certresolver: str = "letsencrypt",
    basic_auth_users: Iterable[str] = (),
    ip_allowlist: Iterable[str] = (),
    middlewares: Iterable[str] = (),
    path_prefix: str = "",
    deny_paths: Iterable[str] = ("/metrics",),
    limited_paths: Iterable[str] = (),
    compose: bool = True,
) -> dict[str, str]:
    """Labels exposing one container through Traefik (see traefik_labels.yml).

    deny_paths get a router of their own that answers 404 (deny@file);
    limited_paths one behind login-rate-limit@file. Both outrank the main
    router by priority. A basic-auth router goes through admin-rate-limit@file.
    With compose=True (a compose file), `$` in htpasswd hashes is doubled so
    Compose does not interpolate it; pass compose=False for docker_container.
    """
    if not ROUTER_NAME.match(name):
        raise ValueError(f"traefik_labels: router name {name!r} must be lower-case letters, digits and '-'")
    if not hostname or not re.match(r"^[A-Za-z0-9*.-]+$", hostname):
        raise ValueError(f"traefik_labels: {hostname!r} is not a host name")
    rule = f"Host(`{hostname}`)"
    if path_prefix:
        rule += f" && PathPrefix(`{path_prefix}`)"
    router, prefix = f"traefik.http.routers.{name}", "traefik.http.middlewares"
    labels = {
        "traefik.enable": "true",
        "traefik.docker.network": network,
        f"{router}.rule": rule,
        f"{router}.entrypoints": entrypoint,
        f"{router}.tls": "true",
        f"{router}.service": name,
        f"traefik.http.services.{name}.loadbalancer.server.port": str(int(port)),
    }
    if certresolver:
        labels[f"{router}.tls.certresolver"] = certresolver
    chain: list[str] = []
    allow = list(ip_allowlist)
    if invalid_networks(allow):
        raise ValueError(f"traefik_labels: ip_allowlist entries {invalid_networks(allow)} are not IP addresses "
                         "or CIDR ranges (e.g. 203.0.113.7 or 10.0.0.0/8)")
    if allow:
        labels[f"{prefix}.{name}-allowlist.ipallowlist.sourcerange"] = ",".join(allow)
        chain.append(f"{name}-allowlist")
    users = list(basic_auth_users)
    if users:
        # Compose interpolates $; $$ is a literal dollar in the container's label.
        joined = ",".join(users)
        labels[f"{prefix}.{name}-auth.basicauth.users"] = joined.replace("$", "$$") if compose else joined
        chain.extend(["admin-rate-limit@file", f"{name}-auth"])
    chain.extend(middlewares)
    if chain:
        labels[f"{router}.middlewares"] = ",".join(chain)
    for suffix, paths, extra, priority in (("deny", deny_paths, ["deny@file"], DENY_PRIORITY),
                                           ("login", limited_paths, ["login-rate-limit@file", *chain], LOGIN_PRIORITY)):
        paths = _router_paths(paths, path_prefix)
        if not paths:
            continue
        sub = f"{router}-{suffix}"
        labels.update({
            f"{sub}.rule": f"Host(`{hostname}`) && (" + " || ".join(f"PathPrefix(`{p}`)" for p in paths) + ")",
            f"{sub}.entrypoints": entrypoint,
            f"{sub}.tls": "true",
            f"{sub}.service": name,
            f"{sub}.priority": str(priority),
            f"{sub}.middlewares": ",".join(extra),
        })
        if certresolver:
            labels[f"{sub}.tls.certresolver"] = certresolver
    return labels


# The compose extension keys (x-traefik, x-traefik-<router>) the compose_lib
# traefik_routes macro writes a service's routes under (Compose ignores x- keys;
# compose_apply turns them into a file-provider configuration for Traefik).
ROUTES_KEY = "x-traefik"
ROUTER_ATTRS = {"rule", "entrypoints", "tls", "tls.certresolver", "service", "priority", "middlewares"}


def traefik_routes(compose: Mapping[str, Any], scheme: str = "http", address: str = "") -> dict[str, Any]:
    """Traefik file-provider configuration for every service of a compose document
    whose x-traefik* keys hold traefik_labels() output (see traefik_routes.yml).

    Traefik then needs no Docker socket: each service's server is
    <scheme>://<container_name>:<port> on the shared network, and services
    routed under the same name (n8n's webhook processors) share one load balancer.
    address: the services run on another host than Traefik (multi_host), which
    publishes their ports there: each server is <scheme>://<address>:<port>.
    """
    routers: dict[str, dict[str, Any]] = {}
    middlewares: dict[str, dict[str, Any]] = {}
    services: dict[str, dict[str, Any]] = {}
    for key, service in sorted(((compose or {}).get("services") or {}).items()):
        service = service or {}
        labels = {}
        for extension in sorted(k for k in service if str(k).startswith(ROUTES_KEY)):
            labels.update(service[extension] or {})
        if not labels:
            continue
        container = service.get("container_name") or key
        for label, value in sorted(labels.items()):
            parts = str(label).split(".")
            value = str(value)
            if label in ("traefik.enable", "traefik.docker.network"):
                continue
            if parts[:3] == ["traefik", "http", "routers"] and len(parts) >= 5:
                _router_attr(routers.setdefault(parts[3], {}), ".".join(parts[4:]), value, label)
            elif parts[:3] == ["traefik", "http", "middlewares"] and len(parts) == 6:
                middlewares[parts[3]] = _middleware(parts[4], parts[5], value, label)
            elif parts[:3] == ["traefik", "http", "services"] and parts[4:] == ["loadbalancer", "server", "port"]:
                servers = services.setdefault(parts[3], {"loadBalancer": {"servers": []}})["loadBalancer"]["servers"]
                url = f"{scheme}://{address or container}:{int(value)}"
                if {"url": url} not in servers:
                    servers.append({"url": url})
            else:
                raise ValueError(f"traefik_routes: {container}: label {label!r} is not one traefik_labels writes")
    missing = sorted({r["service"] for r in routers.values() if r.get("service")} - set(services))
    if missing:
        raise ValueError(f"traefik_routes: routers name services without a port: {', '.join(missing)}")
    http: dict[str, Any] = {}
    for section, content in (("routers", routers), ("middlewares", middlewares), ("services", services)):
        if content:
            http[section] = content
    return {"http": http} if http else {}


def _router_attr(router: dict[str, Any], attr: str, value: str, label: str) -> None:
    if attr not in ROUTER_ATTRS:
        raise ValueError(f"traefik_routes: router setting {label!r} is not one traefik_labels writes")
    if attr == "tls":
        router.setdefault("tls", {})
    elif attr == "tls.certresolver":
        router.setdefault("tls", {})["certResolver"] = value
    elif attr in ("entrypoints", "middlewares"):
        router["entryPoints" if attr == "entrypoints" else attr] = [item for item in value.split(",") if item]
    elif attr == "priority":
        router["priority"] = int(value)
    else:
        router[attr] = value


def _middleware(kind: str, attr: str, value: str, label: str) -> dict[str, Any]:
    # A compose file doubles $ (see traefik_labels); the file provider takes the hash as is.
    if (kind, attr) == ("basicauth", "users"):
        return {"basicAuth": {"users": value.replace("$$", "$").split(",")}}
    if (kind, attr) == ("ipallowlist", "sourcerange"):
        return {"ipAllowList": {"sourceRange": value.split(",")}}
    raise ValueError(f"traefik_routes: middleware setting {label!r} is not one traefik_labels writes")


def _router_paths(paths: Iterable[str], path_prefix: str) -> list[str]:
    """The paths as given and, under a path prefix, also below it (sorted, unique)."""
    result = set()
    for path in paths:
        if not str(path).startswith("/") or not re.match(r"^[A-Za-z0-9/._-]+$", str(path)):
            raise ValueError(f"traefik_labels: {path!r} is not a URL path (e.g. /metrics)")
        result.add(str(path))
        if path_prefix:
            result.add(path_prefix.rstrip("/") + str(path))
    return sorted(result)


def invalid_networks(values: Iterable[Any]) -> list[str]:
    """The entries of an allow-list that are not an IP address or CIDR range."""
    bad = []
    for value in values:
        try:
            ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            bad.append(str(value))
    return bad


CAPABILITY = re.compile(r"^[A-Z][A-Z_]+$")


def invalid_capabilities(cap_add: Mapping[str, Any]) -> list[str]:
    """The containers (keys) of a container -> cap_add map whose value is not a list of capability names."""
    return [name for name, value in cap_add.items()
            if not isinstance(value, Sequence) or isinstance(value, (str, bytes))
            or not all(CAPABILITY.match(str(item)) for item in value)]


GO_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: Any) -> float | None:
    """Seconds of a Go duration (Compose health check times: 20s, 1m30s, 500ms, 0), None when it is not one."""
    text = str(value).strip()
    if text == "0":
        return 0.0
    parts = GO_DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * GO_DURATION_UNITS[unit] for number, unit in parts)


def container_ip(container: Mapping[str, Any], *preferred: str) -> str:
    """The container's address on the first of the preferred networks it is on, else on any
    network (sorted by name), from docker_container_info's `container` (or docker inspect)."""
    networks = ((container or {}).get("NetworkSettings") or {}).get("Networks") or {}
    addresses = {name: (net or {}).get("IPAddress") for name, net in networks.items()}
    for name in [*preferred, *sorted(addresses)]:
        if addresses.get(name):
            return str(addresses[name])
    raise ValueError(f"container_ip: {(container or {}).get('Name', 'the container')} has no address on any network")


def compose_env(values: Mapping[str, Any]) -> str:
    """A compose env file: KEY='value' lines; single quotes keep values literal."""
    lines = []
    for key in sorted(values):
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ValueError(f"compose_env: {key!r} is not a valid variable name")
        value = values[key]
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if "'" in text or "\n" in text:
            raise ValueError(f"compose_env: the value of {key} contains a quote or newline")
        lines.append(f"{key}='{text}'")
    return "\n".join(lines) + "\n"


def compose_files(specs: Iterable[Mapping[str, Any]], contents: Iterable[str], secret: bool = False) -> list[dict[str, Any]]:
    """compose_apply's file specs joined with their rendered contents, for aistack.hosting.compose_project:
    the entries whose `secret` flag equals `secret` (their content is hidden from every output). A `dest`
    ending in "/" is that directory, under the basename of `src`."""
    specs, contents = list(specs or []), list(contents or [])
    if len(specs) != len(contents):
        raise ValueError(f"compose_files: {len(specs)} file specs but {len(contents)} rendered contents")
    entries = []
    for spec, content in zip(specs, contents):
        if bool(spec.get("secret", False)) != secret:
            continue
        entry = {key: str(spec[key]) for key in ("owner", "group", "mode", "validate") if spec.get(key) not in (None, "")}
        for key in ("restart", "reload"):
            if spec.get(key):
                entry[key] = [str(service) for service in spec[key]]
        dest = str(spec["dest"])
        if dest.endswith("/"):
            dest += posixpath.basename(str(spec["src"]))
        entry.update(dest=dest, content=str(content))
        entries.append(entry)
    return entries


def compose_secret_files(secrets: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Start-time secrets of a project's services as compose_project secret_files: for each service,
    {owner: uid, values: {VARIABLE: value}} becomes secrets/<service>/<VARIABLE> (owner uid, mode 0400),
    which the service mounts at /run/secrets and reads through VARIABLE_FILE (compose_lib's
    secret_env/secret_mount); the service is recreated when one of its files changes."""
    entries = []
    for service, spec in sorted((secrets or {}).items()):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("values"), Mapping):
            raise ValueError(f"compose_secret_files: {service} needs {{owner, values: {{VARIABLE: value}}}}")
        for variable, value in sorted(spec["values"].items()):
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", str(variable)):
                raise ValueError(f"compose_secret_files: {variable!r} of {service} is not an environment variable name")
            entries.append({"dest": f"secrets/{service}/{variable}", "content": str(value),
                            "owner": str(spec.get("owner", "root")), "group": "root", "mode": "0400",
                            "restart": [str(service)]})
    return entries


def gpu_devices(gpus: Any, gpu_ready: bool = False) -> list[dict[str, Any]]:
    """Compose ``deploy.resources.reservations.devices`` for a role's ``<role>_gpus`` value.

    ``auto``: every GPU when the nvidia_toolkit role found GPUs and configured
    the runtime (``gpu_ready``), else none; ``all``; ``none``; or a list of GPU
    indexes / UUIDs. An empty list means "render no reservation".
    """
    if isinstance(gpus, str):
        choice = gpus.strip().lower()
        if choice == "auto":
            choice = "all" if gpu_ready else "none"
        if choice == "none":
            return []
        if choice == "all":
            return [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
        raise ValueError(
            f"gpu_devices: gpus must be auto, all, none or a list of GPU ids, got {gpus!r}")
    if isinstance(gpus, Sequence) and not isinstance(gpus, (str, bytes)):
        ids = [str(item) for item in gpus]
        if not ids:
            return []
        return [{"driver": "nvidia", "device_ids": ids, "capabilities": ["gpu"]}]
    raise ValueError(f"gpu_devices: gpus must be auto, all, none or a list of GPU ids, got {gpus!r}")


# Values copied from examples and docs instead of being replaced (lower case). Compared
# whole, and as the start of a value ("change-me-32-random-characters").
PLACEHOLDERS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "password", "passw0rd",
                "secret", "admin", "example", "your-", "xxxx", "todo", "test1234", "12345678",
                "cf-token-with-zone-dns-edit")


def weak_secrets(values: Mapping[str, Any], min_length: int = 12) -> list[str]:
    """One problem line per weak operator-supplied secret, naming the variable, never the value.

    ``values`` maps variable names to what the operator set; empty values are skipped (the role
    generates and keeps those). Weak: shorter than ``min_length``, or a known placeholder.
    """
    problems = []
    for name, value in values.items():
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            problems.append(f"{name} must be a string (quote it in YAML)")
            continue
        lowered = value.strip().lower()
        if any(lowered == word or lowered.startswith(word) for word in PLACEHOLDERS):
            problems.append(f"{name} is a placeholder from an example: set a real secret "
                            "(e.g. `openssl rand -base64 32`) or leave it empty to have one generated")
        elif len(value) < min_length:
            problems.append(f"{name} is shorter than {min_length} characters (aistack_secret_min_length): "
                            "set a longer one or leave it empty to have one generated")
    return problems


BACKUP_TARGET_FIELDS = {
    "local": {"required": ("path",), "optional": ()},
    "sftp": {"required": ("host", "user", "path", "host_key", "private_key"), "optional": ("port",)},
    "s3": {"required": ("bucket", "access_key_id", "secret_access_key"), "optional": ("endpoint", "path", "region")},
}
HOST_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com) [A-Za-z0-9+/]+={0,3}$")


def backup_target_problems(targets: Any) -> list[str]:
    """One problem line per wrong backup_targets entry, naming the entry and the fix, never a secret."""
    if not isinstance(targets, list) or not targets:
        return ["backup_targets must be a non-empty list of repositories, e.g. [{name: local, type: local, "
                "path: /var/backups/aistack/restic}]"]
    problems, names = [], []
    for index, target in enumerate(targets):
        where = f"backup_targets[{index}]"
        if not isinstance(target, Mapping):
            problems.append(f"{where} must be a mapping with name and type")
            continue
        name, kind = target.get("name"), target.get("type")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            problems.append(f"{where}.name must be lower-case letters, digits and dashes (e.g. offsite-s3)")
        elif name in names:
            problems.append(f"{where}.name {name!r} is used twice: every target needs its own name")
        names.append(name)
        where = f"backup_targets[{name if isinstance(name, str) else index}]"
        if kind not in BACKUP_TARGET_FIELDS:
            problems.append(f"{where}.type {kind!r} is not a known target type: use local, sftp or s3")
            continue
        fields = BACKUP_TARGET_FIELDS[kind]
        unknown = sorted(set(target) - {"name", "type", *fields["required"], *fields["optional"]})
        if unknown:
            problems.append(f"{where}: {', '.join(unknown)} not used by a {kind} target "
                            f"(it takes {', '.join(fields['required'] + fields['optional'])})")
        for field in fields["required"]:
            if not isinstance(target.get(field), str) or not target.get(field, "").strip():
                hint = {"host_key": " (the server's public host key, e.g. from `ssh-keyscan -t ed25519 HOST`: "
                                    "the host key is pinned, never trusted on first use)",
                        "private_key": " (an OpenSSH private key, from Vault)",
                        "access_key_id": " (from Vault)", "secret_access_key": " (from Vault)"}.get(field, "")
                problems.append(f"{where}.{field} is missing: a {kind} target needs it{hint}")
        if kind == "local" and isinstance(target.get("path"), str) and not target["path"].startswith("/"):
            problems.append(f"{where}.path must be an absolute path")
        if kind == "sftp":
            host_key = target.get("host_key")
            if isinstance(host_key, str) and host_key.strip() and not all(
                    HOST_KEY.match(" ".join(line.split()[:2])) for line in host_key.strip().splitlines()):
                problems.append(f"{where}.host_key must be public host key lines (\"ssh-ed25519 AAAA...\"), "
                                "as `ssh-keyscan` prints them without the host name")
            key = target.get("private_key")
            if isinstance(key, str) and key.strip() and "PRIVATE KEY-----" not in key:
                problems.append(f"{where}.private_key is not a private key (-----BEGIN OPENSSH PRIVATE KEY-----...)")
            port = target.get("port", 22)
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                problems.append(f"{where}.port must be a TCP port number")
        if kind == "s3":
            endpoint = target.get("endpoint") or ""
            if endpoint and not re.match(r"^https?://[^/\s]+/?$", endpoint):
                problems.append(f"{where}.endpoint must be a URL such as https://s3.example.com (no path: "
                                "use bucket and path)")
            if isinstance(target.get("bucket"), str) and target["bucket"] and not re.fullmatch(
                    r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", target["bucket"]):
                problems.append(f"{where}.bucket is not a valid S3 bucket name")
    return problems


def sftp_key_files(targets: Iterable[Mapping[str, Any]], directory: str) -> list[dict[str, Any]]:
    """For each SFTP backup target: its private key and its pinned host keys in known_hosts form
    (ssh looks a non-default port up as [host]:port), as secret host_files entries."""
    entries = []
    for target in targets or []:
        port = int(target.get("port") or 22)
        known = target["host"] if port == 22 else f"[{target['host']}]:{port}"
        host_keys = [line.strip() for line in str(target["host_key"]).splitlines() if line.strip()]
        entries += [
            {"dest": f"{directory}/{target['name']}.key", "secret": True,
             "content": str(target["private_key"]).strip() + "\n"},
            {"dest": f"{directory}/{target['name']}.known_hosts", "secret": True,
             "content": "".join(f"{known} {line}\n" for line in host_keys)},
        ]
    return entries


class FilterModule:
    """aistack.hosting filters."""

    def filters(self) -> dict[str, Any]:
        return {"traefik_labels": traefik_labels, "traefik_routes": traefik_routes, "htpasswd": htpasswd, "compose_env": compose_env,
                "gpu_devices": gpu_devices, "weak_secrets": weak_secrets, "invalid_networks": invalid_networks,
                "invalid_capabilities": invalid_capabilities,
                "container_ip": container_ip, "compose_files": compose_files, "compose_secret_files": compose_secret_files,
                "bcrypt_password": bcrypt_password, "backup_target_problems": backup_target_problems,
                "sftp_key_files": sftp_key_files, "duration_seconds": duration_seconds}
