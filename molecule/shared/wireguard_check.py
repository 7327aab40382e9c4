"""Check a WireGuard mesh built by aistack.hosting.wireguard, from testinfra hosts.

For the multi_host scenario's tests (import it like testlib: sys.path.insert of
molecule/shared), or run by hand against running test hosts:

    python molecule/shared/wireguard_check.py docker://host-1 docker://host-2 docker://host-3

assert_mesh(hosts) checks that every host's interface lists exactly the other
hosts' public keys as peers, each with its /32 as AllowedIPs, sends traffic to
every peer's mesh address (ICMP echo with `ping` when the host has it, else a
TCP connection, which a peer answers with a reset when nothing listens), and
that every pair then holds a WireGuard handshake. assert_tcp(server, client)
opens a real TCP connection across the mesh and echoes a line over it.
Only public values are read: `wg show <if> dump` would print the private key.
"""

from __future__ import annotations

import json
import sys
import time

# Run on a host: connect to each address (argv[2:]) on port argv[1]; a connection
# or a refusal means the packets crossed the tunnel and back, a timeout means not.
REACH = r"""
import json, socket, sys
port, wait = int(sys.argv[1]), float(sys.argv[2])
result = {}
for address in sys.argv[3:]:
    try:
        socket.create_connection((address, port), timeout=wait).close()
        result[address] = "connected"
    except ConnectionRefusedError:
        result[address] = "refused"
    except OSError as error:
        result[address] = f"no answer: {error}"
print(json.dumps(result))
"""

# Run on the server: accept ONE connection on argv[1]:argv[2] and echo a line back.
ECHO_SERVER = r"""
import socket, sys
with socket.create_server((sys.argv[1], int(sys.argv[2]))) as server:
    server.settimeout(30)
    conn, _ = server.accept()
    with conn:
        conn.sendall(b"echo " + conn.recv(1024))
"""


def mesh_state(host, interface: str = "wg0") -> dict:
    """The interface's address, public key, listen port and peers ({public key: allowed ips})."""
    address = host.check_output(f"ip -4 -o address show dev {interface} | awk '{{print $4}}'").strip()
    peers = {}
    for line in host.check_output(f"wg show {interface} allowed-ips").splitlines():
        key, *allowed = line.split()
        peers[key] = sorted(allowed)
    return {
        "address": address.split("/")[0],
        "cidr": address,
        "public_key": host.check_output(f"wg show {interface} public-key").strip(),
        "port": int(host.check_output(f"wg show {interface} listen-port").strip()),
        "peers": peers,
    }


def handshakes(host, interface: str = "wg0") -> dict:
    """{peer public key: seconds since the epoch of its latest handshake (0: none)}."""
    return {key: int(stamp) for key, stamp in
            (line.split() for line in host.check_output(f"wg show {interface} latest-handshakes").splitlines())}


def reach(host, addresses: list[str], port: int = 9, wait: float = 3) -> dict:
    """Send traffic from host to each address: ping when the host has it, else a TCP connection."""
    if host.run("command -v ping").rc == 0:
        return {a: "ping ok" if host.run(f"ping -c 2 -W 3 {a}").rc == 0 else "no ping reply" for a in addresses}
    return json.loads(host.check_output(f"python3 -c {_quote(REACH)} {port} {wait} {' '.join(addresses)}"))


def assert_mesh(hosts: dict, interface: str = "wg0", timeout: float = 60, replies: bool = True) -> dict:
    """hosts: {name: testinfra host}. Asserts the full mesh works; returns each host's mesh_state.

    replies=False: the hosts' firewalls drop the probes (multi_host: policy drop on input), so only
    sending them is required; the handshakes they cause are still asserted for every pair.
    """
    states = {name: mesh_state(host, interface) for name, host in hosts.items()}
    keys = {name: state["public_key"] for name, state in states.items()}
    assert len(set(keys.values())) == len(keys), f"hosts share a public key: {keys}"
    addresses = {name: state["address"] for name, state in states.items()}
    assert len(set(addresses.values())) == len(addresses), f"hosts share a mesh address: {addresses}"
    for name, state in states.items():
        expected = {keys[other]: [f"{addresses[other]}/32"] for other in hosts if other != name}
        assert state["peers"] == expected, f"{name}: peers {state['peers']}, expected every other member {expected}"

    # A peer that restarted its tunnel is reached again only once the other side
    # gives up its old session and shakes hands anew (WireGuard: ~15 s): retry.
    deadline = time.monotonic() + timeout
    for name, host in hosts.items():
        pending = [addresses[other] for other in hosts if other != name]
        while True:
            # Without replies to wait for, sending is enough: a short timeout.
            answers = reach(host, pending, wait=3 if replies else 0.5)
            failed = {a: r for a, r in answers.items() if r not in ("ping ok", "connected", "refused")}
            if not replies:
                failed = {}
            if not failed or time.monotonic() > deadline:
                break
            pending = list(failed)
            time.sleep(2)
        assert not failed, f"{name} cannot reach across the mesh: {failed}"

    while True:
        missing = {name: [other for other in hosts if other != name and not handshakes(host, interface).get(keys[other])]
                   for name, host in hosts.items()}
        missing = {name: others for name, others in missing.items() if others}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, f"no WireGuard handshake between: {missing}"
    return states


def assert_tcp(server, client, server_address: str, port: int = 45678) -> None:
    """A TCP connection from client to server's mesh address carries a line and its echo."""
    listener = server.run(f"nohup python3 -c {_quote(ECHO_SERVER)} {server_address} {port} >/dev/null 2>&1 & echo started")
    assert listener.rc == 0, listener.stderr
    send = ("import socket,sys,time\n"
            "for _ in range(20):\n"
            "    try:\n"
            "        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); break\n"
            "    except OSError: time.sleep(0.5)\n"
            "c.sendall(b'over wireguard'); print(c.recv(1024).decode())\n")
    reply = client.check_output(f"python3 -c {_quote(send)} {server_address} {port}")
    assert reply.strip() == "echo over wireguard", reply


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def main() -> None:
    import testinfra

    hosts = {spec.split("://")[-1]: testinfra.get_host(spec) for spec in sys.argv[1:]}
    states = assert_mesh(hosts)
    names = list(hosts)
    for server, client in zip(names, names[1:] + names[:1]):
        assert_tcp(hosts[server], hosts[client], states[server]["address"])
    print(json.dumps({name: {"address": s["address"], "peers": len(s["peers"])} for name, s in states.items()}))
    print(f"mesh of {len(hosts)} hosts: peers, reachability, handshakes and TCP echo OK")


if __name__ == "__main__":
    main()
