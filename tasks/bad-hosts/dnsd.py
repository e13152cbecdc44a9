#!/usr/bin/python3
"""dnsd: tiny authoritative DNS for the .internal zone (stands in for the company DNS).

Usage: dnsd.py --listen 127.0.0.53 --zone /etc/dnsd/internal.zone
Zone file lines: "<name> <IPv4>". A records only; other types get an empty answer.
"""
import argparse
import socket
import struct


def load_zone(path):
    zone = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if len(line) == 2:
                zone[line[0].lower().rstrip(".")] = socket.inet_aton(line[1])
    return zone


def parse_question(data):
    i, labels = 12, []
    while data[i]:
        n = data[i]
        labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", data[i + 1:i + 5])
    return ".".join(labels).lower(), qtype, data[12:i + 5]


def answer(data, zone):
    (qid, flags, qdcount) = struct.unpack("!HHH", data[:6])
    if qdcount != 1:
        return None
    name, qtype, question = parse_question(data)
    rd = flags & 0x0100
    if name not in zone and not name.endswith(".internal") and name != "internal":
        rcode, answers = 5, b""                                     # REFUSED: not our zone
    elif name not in zone:
        rcode, answers = 3, b""                                     # NXDOMAIN
    elif qtype == 1:
        rcode = 0
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + zone[name]
    else:
        rcode, answers = 0, b""                                     # no data of that type
    header = struct.pack("!HHHHHH", qid, 0x8400 | rd | rcode, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.53")
    p.add_argument("--zone", required=True)
    args = p.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.listen, 53))
    while True:
        data, peer = sock.recvfrom(512)
        try:
            reply = answer(data, load_zone(args.zone))
        except (IndexError, struct.error, OSError):
            continue
        if reply:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
