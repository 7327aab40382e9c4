"""HTTP(S) probe run INSIDE a test host (python3 stdlib only).

Connects to 127.0.0.1 (Traefik's published ports) but sends SNI and Host for
the public host name and verifies the certificate against a CA file, so tests
exercise exactly what a browser on the internet would. Prints one JSON line:
status, headers of interest, issuer CN, body.

usage: https_probe.py HOST PORT PATH CAFILE [--auth user:pw] [--bearer TOKEN] [--post JSON] [--cookie-login JSON] [--repeat N]

--repeat N sends the request N times back to back and prints {"answers":
[[status, refused_by_traefik], ...]}: Traefik's rate limiter marks its 429s
with an X-Retry-In header, which an application's own 429 lacks.
"""

import argparse
import base64
import http.client
import json
import socket
import ssl


def connect(host: str, port: int, cafile: str):
    if port != 443:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=30), ""
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection(host, 443, context=ctx, timeout=30)
    conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=30), server_hostname=host)
    issuer = dict(field[0] for field in conn.sock.getpeercert()["issuer"]).get("commonName", "")
    return conn, issuer


def request(args, method: str, path: str, body: bytes | None, headers: dict) -> tuple:
    conn, issuer = connect(args.host, args.port, args.cafile)
    conn.request(method, path, body=body, headers={"Host": args.host, **headers})
    resp = conn.getresponse()
    return resp, issuer, resp.read(200_000).decode("utf-8", "replace")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("cafile")
    parser.add_argument("--auth", default="")
    parser.add_argument("--bearer", default="", help="an API token (Authorization: Bearer)")
    parser.add_argument("--post", default=None, help="JSON body: POST instead of GET")
    parser.add_argument("--cookie-login", default=None, help="JSON body POSTed to /rest/login first")
    parser.add_argument("--repeat", type=int, default=0, help="send N times, print statuses only")
    args = parser.parse_args()
    headers = {"Content-Type": "application/json"}
    if args.auth:
        headers["Authorization"] = "Basic " + base64.b64encode(args.auth.encode()).decode()
    if args.bearer:
        headers["Authorization"] = "Bearer " + args.bearer
    if args.cookie_login:
        resp, _, _ = request(args, "POST", "/rest/login", args.cookie_login.encode(), headers)
        cookie = (resp.getheader("Set-Cookie") or "").split(";")[0]
        headers["Cookie"] = cookie
    method = "POST" if args.post is not None else "GET"
    body = args.post.encode() if args.post is not None else None
    if args.repeat:
        answers = []
        for _ in range(args.repeat):
            resp, _, _ = request(args, method, args.path, body, headers)
            answers.append([resp.status, resp.getheader("X-Retry-In") is not None])
        print(json.dumps({"answers": answers}))
        return
    resp, issuer, text = request(args, method, args.path, body, headers)
    print(json.dumps({"status": resp.status, "location": resp.getheader("Location"), "issuer": issuer,
                      "hsts": resp.getheader("Strict-Transport-Security") or "", "body": text}))


if __name__ == "__main__":
    main()
