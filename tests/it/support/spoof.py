#!/usr/bin/env python3
"""Spoofed TCP SYNs for the lab: raw Ethernet frames on one interface of a network namespace
the caller created, with source addresses only from the prefix it gives (the lab keeps them in
10.213.0.0/16 and fd13:213::/32). Every mode is bounded by a count and a number of seconds.

    spoof.py IFACE DST_MAC DST_IP MODE ARGS... [--seconds S] [--rate R]

Modes (SOURCES is a CIDR; source i is the network address plus i << STEP, STEP 0 for IPv4
hosts, 64 for IPv6 /64s):
    fill SOURCES STEP COUNT            one SYN from each of COUNT sources, random knock ports
    flood SOURCES STEP COUNT TOTAL     TOTAL SYNs from random ones of COUNT sources
    from SRC PORT TOTAL                TOTAL SYNs from one address to PORT (0: random knock ports)
    guess SRC TOTAL_PAIRS              random pairs from one address
    pairs SOURCES STEP COUNT PER REAL_A REAL_B POSITION
                                       PER random pairs from each of COUNT sources, source by
                                       source; pair number POSITION is REAL_A, REAL_B

--rate caps SYNs per second (default: as fast as it can), --seconds stops early (default 120),
--ports FILE draws the random knock ports from the ports listed in FILE (one per line).
Prints one JSON line: {"sent": N, "seconds": T, "real_at": SYN index of the real pair or null}.
"""
import ipaddress
import json
import random
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_syn(src, dst, sport, dport, pseudo):
    header = struct.pack("!HHIIBBHHH", sport, dport, random.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    csum = checksum(pseudo + header)
    return header[:16] + struct.pack("!H", csum) + header[18:]


def frame(src, dst, dport, dst_mac, src_mac):
    sport = random.randint(20000, 60000)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, 20)
        tcp = tcp_syn(src, dst, sport, dport, pseudo)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, random.getrandbits(16), 0, 64, 6, 0, src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        return dst_mac + src_mac + b"\x08\x00" + ip + tcp
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", 20, 6)
    tcp = tcp_syn(src, dst, sport, dport, pseudo)
    ip = struct.pack("!IHBB16s16s", 6 << 28, 20, 6, 64, src.packed, dst.packed)
    return dst_mac + src_mac + b"\x86\xdd" + ip + tcp


def main(argv):
    seconds, rate, ports = 120.0, None, None
    args = []
    it = iter(argv)
    for a in it:
        if a == "--seconds":
            seconds = float(next(it))
        elif a == "--rate":
            rate = float(next(it))
        elif a == "--ports":
            ports = [int(line) for line in open(next(it)) if line.strip()]
        else:
            args.append(a)
    iface, dst_mac, dst, mode, rest = args[0], args[1], ipaddress.ip_address(args[2]), args[3], args[4:]
    mac = bytes.fromhex(dst_mac.replace(":", ""))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    src_mac = sock.getsockname()[4][:6]
    knock = (lambda: random.choice(ports)) if ports else (lambda: random.randint(1000, 9999))

    def source(net, step, i):
        return ipaddress.ip_address(int(net.network_address) + (i << step))

    def syns():
        if mode == "fill":
            net, step, count = ipaddress.ip_network(rest[0]), int(rest[1]), int(rest[2])
            for i in range(count):
                yield source(net, step, i), knock(), False
        elif mode == "flood":
            net, step, count, total = ipaddress.ip_network(rest[0]), int(rest[1]), int(rest[2]), int(rest[3])
            for _ in range(total):
                yield source(net, step, random.randrange(count)), knock(), False
        elif mode == "from":
            src, port, total = ipaddress.ip_address(rest[0]), int(rest[1]), int(rest[2])
            for _ in range(total):
                yield src, port or knock(), False
        elif mode == "guess":
            src, pairs = ipaddress.ip_address(rest[0]), int(rest[1])
            for _ in range(pairs):
                yield src, knock(), False
                yield src, knock(), False
        elif mode == "pairs":
            net, step, count, per = ipaddress.ip_network(rest[0]), int(rest[1]), int(rest[2]), int(rest[3])
            real, position = (int(rest[4]), int(rest[5])), int(rest[6])
            n = 0
            for i in range(count):
                src = source(net, step, i)
                for _ in range(per):
                    pair = real if n == position else (knock(), knock())
                    yield src, pair[0], n == position
                    yield src, pair[1], False
                    n += 1
        else:
            raise SystemExit("spoof.py: unknown mode " + mode)

    start = time.monotonic()
    sent, real_at = 0, None
    for src, port, is_real in syns():
        now = time.monotonic()
        if now - start > seconds:
            break
        if rate:
            ahead = start + sent / rate - now
            if ahead > 0:
                time.sleep(ahead)
        if is_real:
            real_at = sent
        sock.send(frame(src, dst, port, mac, src_mac))
        sent += 1
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - start, 3), "real_at": real_at}))


if __name__ == "__main__":
    main(sys.argv[1:])
