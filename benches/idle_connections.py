#!/usr/bin/env python3
"""Memory per idle connection: opens N connections to a server and reports how much its
resident memory grew per connection, for four kinds of idle client.

    silent          TCP connected, nothing sent
    keepalive       one request answered, the connection kept open
    tls-silent      TCP connected to a TLS listener, no ClientHello
    tls-keepalive   TLS handshake, one request answered, kept open

Usage: benches/idle_connections.py PORT PID MODE [N]   (N defaults to 10 000)

With TRIM=1 in the environment it then has gdb call `malloc_trim(0)` in the server and adds the
growth per connection after it: what is live, apart from what glibc's malloc keeps of freed
memory (which depends on the order of the frees and varies from run to run).

PID is the server process whose VmRSS is read (for nginx, its one worker). The requests carry
no AppCode, so the answer is a 401 that keeps the connection open; the upstream is not needed.
The file descriptor limit is raised to the hard limit; the server needs as many, and a
connection cap and deadlines above N and the run's length (`serve --max-connections 20000
--header-timeout 60 --keepalive-timeout 60`). `benches/idle_connections.sh` runs it against
`serve` and nginx.
"""

import os
import resource
import socket
import subprocess
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for {pid}")


def main():
    port, pid, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    speaks = mode.endswith("keepalive")
    time.sleep(0.5)
    before = rss_kib(pid)
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        if mode == "tls-keepalive":
            s = tls.wrap_socket(s, server_hostname="localhost")
        if speaks:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        conns.append(s)
    if speaks:
        for s in conns:
            s.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("the server closed a connection")
                head += chunk
    time.sleep(2)
    after = rss_kib(pid)
    line = f"{mode}\t{n}\t{before}\t{after}\t{(after - before) / n:.2f}"
    if os.environ.get("TRIM") == "1":
        subprocess.run(
            ["gdb", "-p", str(pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
            capture_output=True,
            check=True,
        )
        time.sleep(0.5)
        line += f"\t{(rss_kib(pid) - before) / n:.2f}"
    print(line)


if __name__ == "__main__":
    main()
