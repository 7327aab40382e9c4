"""Check Postgres and Redis between hosts over TLS (aistack_data_tls), from testinfra hosts.

For the multi_host scenario's tests (import it like testlib: sys.path.insert of
molecule/shared) when the inventory sets multi_host_data_tls: true, or run by
hand against running test hosts (the data host first, then consumer hosts):

    python molecule/shared/data_tls_check.py docker://data-host docker://edge-host ...

- assert_ca_key_only_on_data_host(data, consumers): the private CA's key is on
  the data host alone (root, 0600, in a root-only directory), mounted into no
  container; each server key is 0600 and owned by its server's user (uid 999).
- assert_tls_verified(consumer, address): from a consumer host, with the CA
  certificate the role copied there, Postgres (after its SSLRequest) and Redis
  on the published ports complete a TLS handshake that verifies the server's
  certificate and its name (postgres, redis), as the consumers do; the system's
  CA store alone does not verify them (the private CA signed them).
- assert_redis_plaintext_refused(consumer, address): a plain-text PING on the
  published Redis port gets no Redis answer (that port is the TLS listener).
- assert_remote_postgres_clients_use_tls(data): every Postgres connection from
  outside the data host's own internal network (the consumers on other hosts)
  is encrypted (pg_stat_ssl), and there is at least one.
Only public material is read: never a key's content.
"""

from __future__ import annotations

import json
import sys

CA_DIR = "/etc/aistack/ca"
CONSUMER_CA = "/etc/aistack/tls/ca.crt"
BASE_DIR = "/opt/aistack"
POSTGRES_PORT = 5432
REDIS_PORT = 6379

# Run on a host: argv = address port service cafile. A TLS handshake with the
# server verified against cafile (or the system store when cafile is "-") and
# its name checked as `service`; Postgres first asks for TLS (SSLRequest).
HANDSHAKE = r"""
import json, socket, ssl, struct, sys
address, port, service, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context() if cafile == "-" else ssl.create_default_context(cafile=cafile)
result = {}
try:
    with socket.create_connection((address, port), timeout=10) as raw:
        if service == "postgres":
            raw.sendall(struct.pack("!ii", 8, 80877103))
            answer = raw.recv(1)
            if answer != b"S":
                raise SystemExit(print(json.dumps({"verified": False, "error": f"no TLS offered: {answer!r}"})))
        with context.wrap_socket(raw, server_hostname=service) as tls:
            cert = tls.getpeercert()
            result = {"verified": True, "version": tls.version(),
                      "names": sorted(value for kind, value in cert.get("subjectAltName", ()))}
            if service == "redis":
                tls.sendall(b"PING\r\n")
                result["answer"] = tls.recv(64).decode(errors="replace").strip()
except (ssl.SSLError, OSError) as error:
    result = {"verified": False, "error": f"{type(error).__name__}: {error}"}
print(json.dumps(result))
"""

# Run on a host: a plain-text PING to argv[1]:argv[2]; what came back (empty: closed).
PLAIN_PING = r"""
import json, socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as raw:
        raw.sendall(b"PING\r\n")
        raw.settimeout(5)
        try:
            answer = raw.recv(64)
        except OSError as error:
            answer = f"({type(error).__name__})".encode()
    print(json.dumps({"connected": True, "answer": answer.decode(errors="replace")}))
except OSError as error:
    print(json.dumps({"connected": False, "answer": "", "error": str(error)}))
"""


def _python(host, script: str, *args: str) -> dict:
    quoted = " ".join(_quote(arg) for arg in (script, *args))
    return json.loads(host.check_output(f"python3 -c {quoted}"))


def handshake(host, address: str, port: int, service: str, cafile: str = CONSUMER_CA) -> dict:
    """A TLS handshake from host to address:port verified against cafile ("-": the system store)."""
    return _python(host, HANDSHAKE, address, str(port), service, cafile)


def assert_ca_key_only_on_data_host(data, consumers: list) -> None:
    key = data.file(f"{CA_DIR}/ca.key")
    assert key.exists and key.is_file, "no CA key on the data host"
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600), (key.user, key.group, oct(key.mode))
    directory = data.file(CA_DIR)
    assert (directory.user, directory.mode) == ("root", 0o700), (directory.user, oct(directory.mode))
    # Never mounted into a container (the servers get their own key and the CA certificate only).
    mounts = data.check_output("docker ps -q | xargs -r docker inspect -f '{{range .Mounts}}{{.Source}} {{end}}'")
    assert CA_DIR not in mounts, mounts
    for service in ("postgres", "redis"):
        server_key = data.file(f"{BASE_DIR}/{service}/tls/server.key")
        assert server_key.exists, f"no {service} server key"
        assert (server_key.uid, server_key.mode) == (999, 0o600), (service, server_key.uid, oct(server_key.mode))
    for host in consumers:
        assert not host.file(f"{CA_DIR}/ca.key").exists, "a consumer host holds the CA key"
        found = host.run(f"find /etc/aistack {BASE_DIR} -name ca.key 2>/dev/null").stdout.strip()
        assert not found, found
        certificate = host.file(CONSUMER_CA)
        assert certificate.exists and certificate.mode == 0o644, "no CA certificate on the consumer host"
        assert certificate.content_string == data.file(f"{CA_DIR}/ca.crt").content_string


def assert_tls_verified(consumer, address: str) -> dict:
    """Postgres and Redis on address verify against the private CA from the consumer host (not without it)."""
    results = {}
    for service, port in (("postgres", POSTGRES_PORT), ("redis", REDIS_PORT)):
        result = handshake(consumer, address, port, service)
        assert result["verified"], (service, result)
        assert f"{service}" in result["names"] and address in result["names"], (service, result)
        assert result["version"] in ("TLSv1.2", "TLSv1.3"), result
        untrusted = handshake(consumer, address, port, service, "-")
        assert not untrusted["verified"] and "CERTIFICATE_VERIFY_FAILED" in untrusted["error"], (service, untrusted)
        results[service] = result
    # Over TLS Redis answers (it wants the password first).
    assert results["redis"]["answer"].startswith(("-NOAUTH", "+PONG")), results["redis"]
    return results


def assert_redis_plaintext_refused(consumer, address: str) -> dict:
    result = _python(consumer, PLAIN_PING, address, str(REDIS_PORT))
    assert not result["answer"].startswith(("+PONG", "-NOAUTH", "-ERR")), result
    return result


def assert_remote_postgres_clients_use_tls(data, minimum: int = 1) -> list:
    """[(client address, ssl)] of the connections from outside the data host's Postgres network."""
    subnets = data.check_output(
        "docker network inspect aistack_postgres -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}'").split()
    outside = " AND ".join(f"NOT (a.client_addr << '{subnet}')" for subnet in subnets) or "true"
    query = ("SELECT host(a.client_addr), s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
             f"WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL AND {outside}")
    rows = [line.split("|") for line in data.check_output(
        f"docker exec aistack-postgres psql -U postgres -AtF '|' -c {_quote(query)}").splitlines() if line]
    assert len(rows) >= minimum, f"fewer than {minimum} remote Postgres connection(s): {rows}"
    assert all(ssl == "t" for _, ssl in rows), rows
    return rows


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def main() -> None:
    import testinfra

    data, *consumers = (testinfra.get_host(spec) for spec in sys.argv[1:])
    address = data.check_output("ip -4 route get 1.1.1.1 | awk '{for (i=1;i<NF;i++) if ($i==\"src\") print $(i+1)}'")
    assert_ca_key_only_on_data_host(data, consumers)
    for consumer in consumers:
        print(json.dumps(assert_tls_verified(consumer, address)))
        print(json.dumps(assert_redis_plaintext_refused(consumer, address)))
    print(json.dumps(assert_remote_postgres_clients_use_tls(data)))
    print(f"data host {address}: CA key there only, TLS verified from {len(consumers)} host(s), "
          "plain-text Redis refused, remote Postgres clients on TLS")


if __name__ == "__main__":
    main()
