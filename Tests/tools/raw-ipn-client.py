#!/usr/bin/env python3
"""A raw IPN control-protocol client: what a hostile local user can do without our library.

    raw-ipn-client.py hello ABSTRACT DEVICE INODE INTENT [--proof PATH] [--extra N]
    raw-ipn-client.py hold ABSTRACT COUNT
    raw-ipn-client.py attack-pool ABSTRACT DEVICE INODE PATH

ABSTRACT is the host's abstract socket name (ipn-bus/DEVICE/INODE), which every user can read from
/proc/net/unix. `hello` connects and sends a hello for INTENT (connect, stat, remove, setOptions, bind),
with a descriptor of PATH opened O_PATH when --proof is given (and N more descriptors of /dev/null after it
with --extra), and prints the host's first reply as one
JSON line, then "descriptors: N" (how many it attached). `hold` opens COUNT connections and never says
hello, then prints one JSON line: how many the host refused with a message, how many it held and later
closed silently (the hello timeout), how long opening them took, and how long until the last answer.
`attack-pool` joins as a receiver (with the proof PATH), waits for the first sender pool the host hands it
(read-only), tries every way to write it, and prints one JSON line: each attempt and "ok" or the errno name.
Exit status 0 when the protocol exchange happened, whatever the host answered; 1 on a local error.
"""
import errno
import json
import mmap
import os
import select
import socket
import sys
import time


def connect(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect("\0" + name)
    return s


def hello(name, device, inode, intent, proof, extra):
    s = connect(name)
    message = {"hello": {"_0": {
        "version": 2, "intent": intent, "wantReceive": True, "wantSend": True, "wantMembership": False,
        "description": "raw client", "device": int(device), "inode": int(inode)}}}
    fds = []
    if proof:
        fds.append(os.open(proof, os.O_PATH | os.O_CLOEXEC))
    fds += [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _ in range(extra)]
    try:
        socket.send_fds(s, [json.dumps(message).encode()], fds)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before it read anything: its reason is queued
    data, received, _, _ = socket.recv_fds(s, 1 << 18, 8)
    print(data.decode() if data else '{"closed":true}')
    print("descriptors: %d" % len(received))
    for fd in received:
        os.close(fd)


def hold(name, count):
    started = time.monotonic()
    connections = [connect(name) for _ in range(count)]
    opening = time.monotonic() - started
    refused = held = 0
    pending = {c.fileno(): c for c in connections}
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(list(pending), [], [], 5)
        for fd in readable:
            c = pending.pop(fd)
            try:
                data = c.recv(1 << 18)
            except ConnectionResetError:
                data = b""
            if data and b"failure" in data:
                refused += 1
            else:
                held += 1
            c.close()
    print(json.dumps({"opened": count, "refused": refused, "held": held, "unanswered": len(pending),
                      "openingSeconds": opening, "seconds": time.monotonic() - started}))


def attempt(action):
    try:
        action()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def attack_pool(name, device, inode, path):
    s = connect(name)
    message = {"hello": {"_0": {
        "version": 2, "intent": "connect", "wantReceive": True, "wantSend": False, "wantMembership": False,
        "description": "pool attacker", "device": int(device), "inode": int(inode)}}}
    proof = os.open(path, os.O_PATH | os.O_CLOEXEC)
    socket.send_fds(s, [json.dumps(message).encode()], [proof])
    pool = None
    deadline = time.monotonic() + 120
    while pool is None and time.monotonic() < deadline:
        readable, _, _ = select.select([s], [], [], 5)
        if not readable:
            continue
        data, fds, _, _ = socket.recv_fds(s, 1 << 18, 8)
        if not data:
            break
        reply = json.loads(data)
        if "failure" in reply:
            print(json.dumps({"refused": reply}))
            return
        if "poolAvailable" in reply and len(fds) == 1:
            pool = fds[0]
            size = reply["poolAvailable"]["size"]
        else:
            for fd in fds:
                os.close(fd)
        if "welcome" in reply:
            print("joined", file=sys.stderr, flush=True)
    if pool is None:
        print(json.dumps({"pool": "never came"}))
        return
    results = {"pool": "received"}
    results["mmapWriteOnTheDescriptor"] = attempt(lambda: mmap.mmap(pool, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE))
    reopened = []
    results["reopenReadWrite"] = attempt(lambda: reopened.append(os.open("/proc/self/fd/%d" % pool, os.O_RDWR)))
    if reopened:
        fd = reopened[0]
        results["mmapWriteReopened"] = attempt(lambda: mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE))
        results["pwriteReopened"] = attempt(lambda: os.pwrite(fd, b"x" * 64, 0))
        results["truncateReopened"] = attempt(lambda: os.ftruncate(fd, 0))
    print(json.dumps(results, sort_keys=True))


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "hello":
        options = dict(zip(sys.argv[6::2], sys.argv[7::2]))
        hello(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], options.get("--proof"), int(options.get("--extra", "0")))
    elif len(sys.argv) == 6 and sys.argv[1] == "attack-pool":
        attack_pool(*sys.argv[2:6])
    elif len(sys.argv) == 4 and sys.argv[1] == "hold":
        hold(sys.argv[2], int(sys.argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
