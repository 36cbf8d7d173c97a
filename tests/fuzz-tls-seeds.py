#!/usr/bin/env python3
"""fuzz-tls-seeds.py — capture real TLS handshakes as seeds for tests/fuzz-tls.

    python3 tests/fuzz-tls-seeds.py CERT KEY OUTDIR

Runs `openssl s_server` and `openssl s_client` on 127.0.0.1 only, with a
relay between them that records what each side sends, for several
handshakes (TLS 1.3, TLS 1.2, SNI, ALPN, a refused version).  Each
capture becomes seeds in fuzz-tls's input format (see tests/fuzz-tls.c):
a flags byte, a piece-size byte, then the bytes of one side — the
client's (ClientHello onwards) for the server translator, the server's
(ServerHello onwards) for the client translators.  A few hand-made inputs
(an HTTP request on the TLS port, a bare alert, an SSLv2-style hello) are
added.  The committed corpus is this script's output; the captures hold
random values, so running it again gives other bytes of the same shape.
"""
import os
import select
import socket
import subprocess
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, deadline=5.0):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def capture(cert, key, server_args, client_args):
    """Returns (client_bytes, server_bytes) of one connection."""
    sport, rport = free_port(), free_port()
    # -naccept 2: the readiness probe above uses one accept.
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:%d" % sport, "-cert", cert,
         "-key", key, "-naccept", "2", "-quiet"] + server_args,
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_listening(sport, server):
            raise RuntimeError("s_server did not start")
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", rport))
        lsock.listen(1)
        client = subprocess.Popen(
            ["openssl", "s_client", "-connect", "127.0.0.1:%d" % rport, "-quiet"] + client_args,
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        a, _ = lsock.accept()
        b = socket.create_connection(("127.0.0.1", sport))
        sent = {a: bytearray(), b: bytearray()}
        peer = {a: b, b: a}
        # Application data once the handshake is under way, then EOF.
        time.sleep(0.3)
        try:
            client.stdin.write(b"hello over tls\n")
            client.stdin.close()
        except BrokenPipeError:
            pass
        end = time.time() + 3
        open_ = {a, b}
        while open_ and time.time() < end:
            r, _, _ = select.select(list(open_), [], [], 0.2)
            for s in r:
                data = s.recv(65536)
                if not data:
                    open_.discard(s)
                    try:
                        peer[s].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                sent[s] += data
                peer[s].sendall(data)
        client.kill()
        client.wait()
        a.close()
        b.close()
        lsock.close()
        return bytes(sent[a]), bytes(sent[b])
    finally:
        server.kill()
        server.wait()


def records(data):
    """The TLS records of data, whole, in order."""
    out, off = [], 0
    while off + 5 <= len(data):
        n = 5 + (data[off + 3] << 8 | data[off + 4])
        out.append(data[off:off + n])
        off += n
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    cert, key, outdir = sys.argv[1:]
    os.makedirs(outdir, exist_ok=True)
    runs = {
        "tls13": ([], []),
        "tls12": ([], ["-tls1_2"]),
        "tls12-chacha": ([], ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]),
        "sni-alpn": (["-alpn", "h2,http/1.1"], ["-servername", "localhost", "-alpn", "h2"]),
        "tls13-p256": ([], ["-groups", "P-256"]),
        "tls11": (["-tls1_1"], ["-tls1_1"]),  # refused by evio: an alert
    }
    seeds = {}
    for name, (sargs, cargs) in runs.items():
        c2s, s2c = capture(cert, key, sargs, cargs)
        if not c2s:
            print("fuzz-tls-seeds: %s: nothing captured" % name, file=sys.stderr)
            continue
        # Server translator (flags 0), whole stream and in pieces; the
        # first record alone (the hello) with the application writing
        # early and closing in order.
        seeds["srv-%s-whole" % name] = bytes([0x00, 0]) + c2s
        seeds["srv-%s-pieces" % name] = bytes([0x01, 7]) + c2s
        seeds["srv-%s-hello" % name] = bytes([0x44, 0]) + records(c2s)[0] if records(c2s) else b""
        if s2c:
            # Client translators: 2 without verification, 3 verifying.
            seeds["cli-%s-whole" % name] = bytes([0x02, 0]) + s2c
            seeds["cli-%s-verify" % name] = bytes([0x4b, 5]) + s2c
    seeds["srv-http-on-tls"] = bytes([0x00, 0]) + b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    seeds["srv-alert"] = bytes([0x00, 0]) + bytes([21, 3, 3, 0, 2, 2, 40])
    seeds["srv-sslv2-hello"] = bytes([0x00, 1]) + bytes(
        [0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]) + bytes(range(21)) + bytes(16)
    seeds["srv-empty-records"] = bytes([0x00, 0]) + bytes([22, 3, 1, 0, 0]) * 4
    seeds["cli-alert"] = bytes([0x02, 0]) + bytes([21, 3, 3, 0, 2, 2, 70])
    for name, data in sorted(seeds.items()):
        if data:
            with open(os.path.join(outdir, name), "wb") as f:
                f.write(data)
    print("fuzz-tls-seeds: %d seeds in %s" % (len([d for d in seeds.values() if d]), outdir))


if __name__ == "__main__":
    main()
