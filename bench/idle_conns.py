#!/usr/bin/env python3
"""idle_conns.py — open N NBD connections that finish the handshake and then sit idle.

    idle_conns.py HOST PORT EXPORT N READY

Each connection does the fixed-newstyle handshake (NBD_FLAG_C_FIXED_NEWSTYLE |
NBD_FLAG_C_NO_ZEROES, then NBD_OPT_GO for EXPORT) and stays in transmission
without sending a request. When all N are in transmission the file READY is
created and the connections are held until the process is killed. READY = "-":
close them at once and exit (a warm-up). Exit status 1 if any handshake fails.
Standard library only (bench/limits.sh: bytes of server RSS per idle connection).
"""
import socket
import struct
import sys
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
OPT_GO = 7
REP_ACK = 1


def recv_all(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection during the handshake")
        buf += chunk
    return buf


def handshake(host, port, export):
    s = socket.create_connection((host, port), timeout=30)
    magic, opt, _flags = struct.unpack(">QQH", recv_all(s, 18))
    if magic != NBDMAGIC or opt != IHAVEOPT:
        raise ConnectionError("not a newstyle NBD server")
    s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
    name = export.encode()
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data)
    while True:
        rmagic, _opt, rtype, rlen = struct.unpack(">QIII", recv_all(s, 20))
        if rmagic != REPLY_MAGIC:
            raise ConnectionError("bad option reply magic")
        recv_all(s, rlen)
        if rtype == REP_ACK:
            return s
        if rtype & 0x80000000:
            raise ConnectionError("NBD_OPT_GO refused (reply type 0x%x)" % rtype)


def main(argv):
    if len(argv) != 6:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    host, port, export, n, ready = argv[1], int(argv[2]), argv[3], int(argv[4]), argv[5]
    socks = []
    try:
        for _ in range(n):
            socks.append(handshake(host, port, export))
    except (OSError, ConnectionError) as e:
        print("idle_conns: connection %d: %s" % (len(socks) + 1, e), file=sys.stderr)
        return 1
    if ready == "-":
        return 0
    open(ready, "w").close()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
