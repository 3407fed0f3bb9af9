#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/).

Run once after changing a seed here: /usr/bin/python3 tests/fuzz/seeds.py
Messages are written with CRLF line ends; see fuzz_receive.c for the flag
byte, the "@@@@" separator and the $PLACEHOLDERS.
"""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))

# -------------------------------------------------------------- receive


def crlf(text):
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


def msg(start, headers, body=""):
    """A request or response: start line, header lines, $CL, body."""
    lines = [start] + [l for l in headers.split("\n") if l] + ["Content-Length: $CL"]
    return crlf("\n".join(lines)) + b"\r\n" + body.replace("\n", "\r\n").encode()


IN_DIALOG = """Via: SIP/2.0/UDP $PEER;branch=$BRANCH;rport
From: <sip:peer@127.0.0.1>;tag=$RTAG
To: <sip:self@127.0.0.1>;tag=$LTAG
Call-ID: $CALLID
Max-Forwards: 70
Contact: <sip:peer@$PEER>"""


def refer(refer_to_lines, extra=""):
    return msg("REFER sip:self@$SELF SIP/2.0",
               IN_DIALOG + "\nCSeq: $CSEQ REFER\n" + refer_to_lines + "\n" + extra)


def notify(event, state, frag, callid="$CALLID"):
    return msg("NOTIFY sip:self@$SELF SIP/2.0",
               IN_DIALOG.replace("$CALLID", callid) +
               "\nCSeq: $CSEQ NOTIFY\nEvent: %s\nSubscription-State: %s\n"
               "Content-Type: message/sipfrag;version=2.0" % (event, state),
               frag + "\n")


def tx_response(code, reason, extra=""):
    """A response to the receiver's last request (its client transaction)."""
    return msg("SIP/2.0 %d %s" % (code, reason),
               "Via: $TXVIA\nFrom: $TXFROM\nTo: $TXTO;tag=fz1\n"
               "Call-ID: $TXCALLID\nCSeq: $TXCSEQ\n" + extra)


SDP = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 4000 RTP/AVP 0
"""


def invite(callid, extra, body=SDP):
    return msg("INVITE sip:self@$SELF SIP/2.0",
               "Via: SIP/2.0/UDP $PEER;branch=$BRANCH;rport\n"
               "From: <sip:mallory@127.0.0.1>;tag=m1\nTo: <sip:self@127.0.0.1>\n"
               "Call-ID: %s\nCSeq: 1 INVITE\nMax-Forwards: 70\n"
               "Contact: <sip:mallory@$PEER>\nContent-Type: application/sdp\n%s"
               % (callid, extra), body)


CAROL = "Refer-To: <sip:carol@$CAROL>\nReferred-By: <sip:peer@127.0.0.1>"
ATTENDED = ("Refer-To: <sip:carol@$CAROL?Replaces=$CALLID%3Bto-tag%3D$RTAG"
            "%3Bfrom-tag%3D$LTAG>")
DEAD = "Refer-To: <sip:nobody@127.0.0.1:9>"
SEP = b"@@@@"

RECEIVE = {
    # flag byte, messages
    "refer-blind-default": (0x00, [refer(CAROL)]),
    "refer-blind-follow": (0x01, [refer(CAROL)]),
    "refer-blind-pending": (0x02, [refer(CAROL)]),
    "refer-accept-only": (0x03, [refer(CAROL)]),
    "refer-final-only-alice": (0x85, [refer(CAROL)]),
    "refer-then-bye": (0x21, [refer(CAROL)]),
    "refer-attended": (0x01, [refer(ATTENDED)]),
    "refer-sub-false": (0x01, [refer(CAROL, "Refer-Sub: false")]),
    "refer-compact": (0x00, [refer("r: <sip:carol@$CAROL>\nb: <sip:p@127.0.0.1>")]),
    "refer-early": (0x11, [refer(CAROL)]),
    "refer-early-cancel": (0x31, [refer(CAROL)]),
    "refer-two": (0x01, [refer(CAROL), refer(CAROL)]),
    "refer-storm": (0x02, [refer(CAROL)] * 8),
    "refer-bad-escape": (0x01, [refer("Refer-To: <sip:c@$CAROL?Replaces=%zz>")]),
    "refer-trunc-escape": (0x01, [refer("Refer-To: <sip:c@$CAROL?Replaces=a%4>")]),
    "refer-crlf-escape": (0x01, [refer(
        "Refer-To: <sip:c@$CAROL?Replaces=a%0D%0ARoute:%20%3Csip:e@10.0.0.1%3E>")]),
    "refer-smuggled-route": (0x01, [refer(
        "Refer-To: <sip:c@$CAROL?Route=%3Csip:evil@10.0.0.1%3E&X-A=1&Via=x>")]),
    "refer-tel": (0x01, [refer("Refer-To: <tel:+15551234>")]),
    "refer-method-bye": (0x01, [refer("Refer-To: <sip:c@$CAROL;method=BYE>")]),
    "refer-two-refer-to": (0x01, [refer(CAROL + "\nRefer-To: <sip:d@$CAROL>")]),
    "refer-self": (0x01, [refer("Refer-To: <sip:self@$SELF>")]),
    "refer-missing": (0x01, [refer("")]),
    "refer-dead-target": (0x01, [refer(DEAD), tx_response(180, "Ringing"),
                                  tx_response(486, "Busy Here")]),
    "refer-notify-481": (0x03, [refer(CAROL), tx_response(481, "Gone")]),
    "notify-unknown": (0x00, [notify("refer;id=77", "active;expires=60",
                                     "SIP/2.0 100 Trying")]),
    "notify-bad-event": (0x00, [notify("presence", "active", "SIP/2.0 200 OK")]),
    "notify-ood": (0x00, [notify("refer", "terminated", "SIP/2.0 200 OK",
                                 callid="nosuch@127.0.0.1")]),
    "referrer-notify": (0x00, [b"!refer sip:carol@$CAROL",
                               notify("refer;id=$TXN", "active;expires=30",
                                      "SIP/2.0 180 Ringing"),
                               notify("refer;id=$TXN", "terminated;reason=noresource",
                                      "SIP/2.0 200 OK")]),
    "referrer-rejected": (0x04, [b"!refer sip:nobody@127.0.0.1:9",
                                 tx_response(603, "Decline")]),
    "bye": (0x00, [msg("BYE sip:self@$SELF SIP/2.0", IN_DIALOG + "\nCSeq: $CSEQ BYE")]),
    "reinvite": (0x00, [msg("INVITE sip:self@$SELF SIP/2.0",
                            IN_DIALOG + "\nCSeq: $CSEQ INVITE\nContent-Type: application/sdp",
                            SDP)]),
    "invite-replaces": (0x00, [invite("new1@127.0.0.1",
                                      "Replaces: $CALLID;to-tag=$LTAG;from-tag=$RTAG\n")]),
    "invite-replaces-early-only": (0x10, [invite(
        "new2@127.0.0.1", "Replaces: $CALLID;to-tag=$LTAG;from-tag=$RTAG;early-only\n")]),
    "invite-replaces-other": (0x00, [invite(
        "new3@127.0.0.1", "Replaces: other@host;to-tag=x;from-tag=y\n")]),
    "invite-replaces-swapped": (0x00, [invite(
        "new4@127.0.0.1", "Replaces: $CALLID;to-tag=$RTAG;from-tag=$LTAG\n")]),
    "refer-ood": (0x08, [msg("REFER sip:self@$SELF SIP/2.0",
                             "Via: SIP/2.0/UDP $PEER;branch=$BRANCH;rport\n"
                             "From: <sip:peer@127.0.0.1>;tag=o1\nTo: <sip:self@127.0.0.1>\n"
                             "Call-ID: ood1@127.0.0.1\nCSeq: 1 REFER\nMax-Forwards: 70\n"
                             "Contact: <sip:peer@$PEER>\n" + CAROL)]),
    "options": (0x00, [msg("OPTIONS sip:self@$SELF SIP/2.0",
                           "Via: SIP/2.0/UDP $PEER;branch=$BRANCH\n"
                           "From: <sip:p@127.0.0.1>;tag=o2\nTo: <sip:self@127.0.0.1>\n"
                           "Call-ID: opt1@127.0.0.1\nCSeq: 1 OPTIONS\nMax-Forwards: 70")]),
    "stream-refer": (0x41, [refer(CAROL)]),
    "stream-two": (0x40, [refer(CAROL) + refer(ATTENDED)]),
    "stream-keepalive": (0x41, [b"\r\n\r\n" + refer(CAROL)]),
}

# -------------------------------------------------------------- parse

PARSE = {
    "name-addr": b'"Carol \\"C\\"" <sip:carol@example.com:5070;transport=tcp?Replaces=a%40b%3Bto-tag%3D1%3Bfrom-tag%3D2>;x=1;y',
    "addr-spec": b"sip:carol@127.0.0.1;tag=x",
    "ipv6": b"<sips:[2001:db8::1]:5061;maddr=[::1]>",
    "tel": b"<tel:+1-555-1234;phone-context=example.com>",
    "headers": b"<sip:c@h?Route=%3Csip:e%3E&X-A=1&&body=hello&Replaces=>",
    "bad-escape": b"<sip:c@h?Replaces=%zz>",
    "trunc-escape": b"<sip:c@h?Replaces=%4>",
    "nul-escape": b"<sip:c@h?Replaces=%00>",
    "unknown-scheme": b"<http://example.com/a?b=c>",
    "replaces-line": b"abc@host;to-tag=1;from-tag=2;early-only",
    "sipfrag": b"SIP/2.0 180 Ringing\r\nContact: <sip:c@h>\r\n",
    "digest": b'Digest realm="r", nonce="n", qop="auth,auth-int", algorithm=MD5, opaque="o"',
    "extra-headers": b"X-A: 1\r\nX-B:2\nBad Line\r\n",
    "request": (b"REFER sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1,"
                b" SIP/2.0/TCP h2\r\nr: <sip:c@h>\r\nReferred-By: <sip:b@h>\r\n"
                b"Refer-To: <sip:d@h>,\r\n <sip:e@h>\r\nl: 5\r\n\r\nhello"),
}


def write(target, items, encode):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, item in items.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(encode(item))


def filled(msg):
    """A receive message as it arrives: placeholders filled, $CL right."""
    fill = lambda b: re.sub(rb"\$[A-Z][A-Z_]*",
                            lambda m: b"1" if m[0] == b"$CSEQ" else b"h1x", b)
    head, blank, body = msg.partition(b"\r\n\r\n")
    body = fill(body)
    head = fill(head.replace(b"$CL", str(len(body)).encode()))
    return head + blank + body


def message_items():
    """fuzz_message: each receive message alone, as it arrives."""
    out = {}
    for name, (_, msgs) in RECEIVE.items():
        for i, m in enumerate(msgs):
            out[f"{name}-{i}"] = filled(m)
    return out


def receive_bytes(item):
    flags, msgs = item
    return bytes([flags]) + SEP.join(msgs)


if __name__ == "__main__":
    write("receive", RECEIVE, receive_bytes)
    write("parse", PARSE, lambda b: b)
    write("message", message_items(), lambda b: b)
