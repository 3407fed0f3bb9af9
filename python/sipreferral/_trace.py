"""What the agent shows of the SIP messages it sees: one-line ladder
summaries, and a pcap capture (LINKTYPE_RAW, synthesized IP/UDP/TCP
headers) that Wireshark, tshark and sngrep read. Same output as the C
agent's --ladder and --pcap."""

from __future__ import annotations

import ipaddress
import re
import struct
import time
from typing import BinaryIO, Dict, Optional, Tuple

from ._base import Transport

__all__ = ["header", "summary", "ladder_line", "Pcap"]


def _split(data: bytes) -> Tuple[str, str]:
    """(header block, body) as text."""
    text = data.decode("utf-8", "replace")
    m = re.search(r"\r?\n\r?\n", text)
    if not m:
        return text, ""
    return text[:m.start()], text[m.end():]


def header(data: bytes, name: str, compact: Optional[str] = None) -> Optional[str]:
    """The first value of a header (or its compact form), trimmed."""
    head, _ = _split(data)
    names = {name.lower()} | ({compact.lower()} if compact else set())
    for line in head.splitlines()[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in names:
            return value.strip()
    return None


def summary(data: bytes) -> str:
    """"INVITE sip:x  Referred-By: ..." / "202 Accepted (REFER)"."""
    head, body = _split(data)
    start = head.split("\n", 1)[0].strip()
    start = "".join(c if c.isprintable() else "?" for c in start)
    cseq = header(data, "CSeq") or ""
    method = cseq.split(" ", 1)[1].strip() if " " in cseq else cseq

    def add(out: str, name: str, compact: Optional[str] = None) -> str:
        v = header(data, name, compact)
        return out if v is None else f"{out}  {name}: {v}"

    if start.startswith("SIP/2.0 "):
        out = f"{start[8:]} ({method})"
        return add(out, "Refer-Sub") if method.upper() == "REFER" else out
    out = start.replace(" SIP/2.0", "", 1)
    verb = out.split(" ", 1)[0].upper()
    if verb == "REFER":
        out = add(add(out, "Refer-To", "r"), "Refer-Sub")
    elif verb == "INVITE":
        out = add(add(out, "Referred-By", "b"), "Replaces")
    elif verb == "NOTIFY":
        frag = body.split("\n", 1)[0].strip()
        if frag:
            out += f"  [{frag}]"
        out = add(out, "Subscription-State")
    return out


def ladder_line(src: str, dst: str, tp: Transport, data: bytes) -> str:
    """One line of the ladder: time, who to whom, transport, summary."""
    now = time.time()
    t = time.strftime("%H:%M:%S", time.localtime(now))
    ms = int(now * 1000) % 1000
    return f"{t}.{ms:03d}  {src} -> {dst}  {tp.name}  {summary(data)}"


# ------------------------------------------------------------ pcap

_LINKTYPE_RAW = 101
_MAX_SEGMENT = 60000  # payload per packet, below IPv4's 65535


def _addr(text: str) -> Optional[Tuple[bytes, int, bool]]:
    """"1.2.3.4:5060" / "[::1]:5060" -> (packed ip, port, v6)."""
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)", text or "")
    if not m:
        return None
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return ip.packed, int(port), ip.version == 6


def _sum(data: bytes, acc: int = 0) -> int:
    if len(data) % 2:
        data += b"\0"
    acc += sum(struct.unpack(f"!{len(data) // 2}H", data))
    return acc


def _fold(acc: int) -> int:
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return ~acc & 0xFFFF


class Pcap:
    """A pcap file of SIP messages; TCP ones get one segment each with
    per-direction sequence numbers, so stream reassembly works."""

    def __init__(self, path: str) -> None:
        self.f: BinaryIO = open(path, "wb")
        self.f.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144,
                                 _LINKTYPE_RAW))
        self.f.flush()
        self.seq: Dict[Tuple, int] = {}
        self.ip_id = 0

    def close(self) -> None:
        self.f.close()

    def write(self, outgoing: bool, tp: Transport, local: str, remote: str,
              data: bytes) -> None:
        """Records one message (silently skips what cannot be shown)."""
        lo, re_ = _addr(local), _addr(remote)
        if lo is None or re_ is None or lo[2] != re_[2] or self.f.closed:
            return
        src, dst = (lo, re_) if outgoing else (re_, lo)
        tcp = tp == Transport.TCP
        if not tcp and len(data) > _MAX_SEGMENT:
            return
        off = 0
        while True:
            chunk = data[off:off + _MAX_SEGMENT]
            seq = self.seq.get((src, dst), 1)
            ack = self.seq.get((dst, src), 1)
            if tcp:
                self.seq[(src, dst)] = (seq + len(chunk)) & 0xFFFFFFFF
            self._packet(src, dst, tcp, seq, ack, chunk)
            off += _MAX_SEGMENT
            if off >= len(data):
                break
        self.f.flush()  # a killed agent still leaves a readable capture

    def _packet(self, src: Tuple, dst: Tuple, tcp: bool, seq: int, ack: int,
                payload: bytes) -> None:
        v6 = src[2]
        proto = 6 if tcp else 17
        if tcp:
            l4 = bytearray(struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack,
                                       5 << 4, 0x18, 65535, 0, 0))
            ck_at = 16
        else:
            l4 = bytearray(struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0))
            ck_at = 6
        length = len(l4) + len(payload)
        # checksum over the pseudo-header, the L4 header and the payload
        acc = _sum(src[0] + dst[0]) + proto + (length & 0xFFFF) + (length >> 16)
        acc = _sum(bytes(l4), acc)
        acc = _sum(payload, acc)
        ck = _fold(acc) or 0xFFFF
        struct.pack_into("!H", l4, ck_at, ck)
        if v6:
            ip = struct.pack("!IHBB", 0x60000000, length, proto, 64) + src[0] + dst[0]
        else:
            hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length,
                                        self.ip_id, 0x4000, 64, proto, 0,
                                        src[0], dst[0]))
            self.ip_id = (self.ip_id + 1) & 0xFFFF
            struct.pack_into("!H", hdr, 10, _fold(_sum(bytes(hdr))))
            ip = bytes(hdr)
        now = time.time()
        total = len(ip) + length
        self.f.write(struct.pack("=IIII", int(now), int(now * 1e6) % 1000000,
                                 total, total))
        self.f.write(ip + bytes(l4) + payload)
