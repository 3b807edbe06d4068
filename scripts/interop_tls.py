#!/usr/bin/env python3
"""The Jabber SIP OAuth exchange of shared/seed/sip-oauth-jabber.txt over TLS and mutual TLS,
with a client nobody here wrote: Python's standard-library ssl module (OpenSSL).

Checks, each printed as one line, the first failure ends the run with exit 1:
  oauth  TLS 1.3 and TLS 1.2, server certificate verified against ca.pem: REGISTER without
         credentials -> 407 with Proxy-Authenticate: Bearer realm="ccmsipline"; a token that
         does not verify -> 407 with error="invalid_token"; the same Call-ID, CSeq + 1 with
         Proxy-Authorization: Bearer token="..." and the Cisco multipart body -> 200 with a To
         tag, Expires and the Contact.
  mra    mutual TLS with the Expressway-C certificate: the same 407 -> 200, several devices
         over the one connection (as Expressway-C multiplexes them).
  mra    without a client certificate: no SIP answer, the connection is refused.

Run by scripts/interop.sh, which makes the lab material and tokens:
  interop_tls.py --host 127.0.0.1 --oauth-port P --mra-port P --ca ca.pem \
      --client-cert expressway.pem --client-key expressway.key --device USER=TOKEN ...
"""

import argparse
import itertools
import random
import socket
import ssl
import sys

BOUNDARY = "uniqueBoundary"
SUPPORTED = (
    "replaces,join,sdp-anat,norefersub,resource-priority,extended-refer,X-cisco-callinfo,"
    "X-cisco-serviceuri,X-cisco-escapecodes,X-cisco-service-control,X-cisco-srtp-fallback,"
    "X-cisco-monrec,X-cisco-config,X-cisco-sis-7.0.0,X-cisco-xsi-8.5.1,X-cisco-graceful-reg,"
    "X-cisco-duplicate-reg"
)
PART_HEAD = (
    "Content-Type: application/x-cisco-remotecc-request+xml\r\n"
    "Content-Disposition: session;handling=required\r\n\r\n"
)
PART1 = """<?xml version="1.0" encoding="UTF-8"?>
<x-cisco-remotecc-request>
  <bulkupdate>
    <contentid>
      <fields>
        <field name="ringTone">Ring1.raw</field>
        <field name="callForwardAll">false</field>
        <field name="doNotDisturb">false</field>
        <field name="featureControlPolicy">default</field>
      </fields>
    </contentid>
  </bulkupdate>
</x-cisco-remotecc-request>
"""
PART2 = """<?xml version="1.0" encoding="UTF-8"?>
<x-cisco-remotecc-request>
  <optionsind>
    <combine max="6">
      <service-control></service-control>
    </combine>
    <dialog usage="hook status">
      <unot></unot>
      <sub></sub>
    </dialog>
    <dialog usage="shared line">
      <unot></unot>
      <sub></sub>
    </dialog>
    <presence usage="blf speed dial">
      <unot></unot>
      <sub></sub>
    </presence>
    <joinreq></joinreq>
    <cfwdall-anyline>No</cfwdall-anyline>
    <coaching></coaching>
    <oosalarm></oosalarm>
    <x-cisco-number></x-cisco-number>
    <gatewayrecording></gatewayrecording>
    <conferenceDisplayInfo></conferenceDisplayInfo>
  </optionsind>
</x-cisco-remotecc-request>
"""


class Failure(Exception):
    pass


def cisco_body():
    """The two remotecc parts Jabber sends with REGISTER (src/load/jabber.rs), CRLF line ends."""
    body = ""
    for part in (PART1, PART2):
        body += f"--{BOUNDARY}\r\n{PART_HEAD}{part.replace(chr(10), chr(13) + chr(10))}"
    return (body + f"--{BOUNDARY}--\r\n").encode()


class Device:
    """One Jabber client: its identity, and the Call-ID/CSeq its REGISTERs share."""

    counter = itertools.count(1)

    def __init__(self, user, token, domain, local):
        n = next(Device.counter)
        self.user, self.token, self.domain, self.local = user, token, domain, local
        self.call_id = f"88232345-1234{n:04d}-{random.getrandbits(32):08x}@127.0.0.1"
        self.from_tag = f"882323451234{random.getrandbits(32):08x}-{n:08x}"
        self.cseq = 2270
        self.uuid = f"a8ae9f92-4b07-a0d7-d701-{random.getrandbits(48):012x}"
        self.device = f"CSF{user}"

    def register(self, token=None):
        """The REGISTER as the seed shows it; the token variant carries the Cisco body."""
        self.cseq += 1
        branch = f"z9hG4bK{random.getrandbits(40):010x}"
        lines = [
            f"REGISTER sip:{self.domain} SIP/2.0",
            f"Via: SIP/2.0/TLS {self.local};branch={branch}",
            f"From: <sip:{self.user}@{self.domain}>;tag={self.from_tag}",
            f"To: <sip:{self.user}@{self.domain}>",
            f"Call-ID: {self.call_id}",
            "Max-Forwards: 70",
            "Date: Mon, 30 Mar 2020 11:03:19 GMT",
            f"CSeq: {self.cseq} REGISTER",
            "User-Agent: Cisco-CSF",
            f"Contact: <sip:{self.uuid}@{self.local};transport=tls>;"
            f'+sip.instance="<urn:uuid:00000000-0000-0000-0000-{self.uuid[-12:]}>";'
            f'+u.sip!devicename.ccm.cisco.com="{self.device}";'
            '+u.sip!model.ccm.cisco.com="503";video',
        ]
        body = b""
        if token is not None:
            lines.append(f'Proxy-Authorization: Bearer token="{token}"')
        lines.append(f"Supported: {SUPPORTED}")
        if token is not None:
            lines.append(
                f'Reason: SIP;cause=200;text="cisco-alarm:111 Name={self.device} '
                "ActiveLoad=Jabber_for_Windows-12.8.0.51973 "
                "InactiveLoad=Jabber_for_Windows-12.8.0.51973 "
                'Last=Application-Requested-Destroy"'
            )
        lines.append("Expires: 3600")
        if token is not None:
            body = cisco_body()
            lines += [f"Content-Type: multipart/mixed; boundary={BOUNDARY}", "Mime-Version: 1.0"]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Response:
    def __init__(self, head):
        text = head.decode("utf-8", "replace")
        first, *rest = text.split("\r\n")
        parts = first.split(" ", 2)
        if len(parts) < 2 or parts[0] != "SIP/2.0" or not parts[1].isdigit():
            raise Failure(f"not a SIP response: {first!r}")
        self.status, self.first = int(parts[1]), first
        self.headers = []
        for line in rest:
            if ":" in line:
                name, value = line.split(":", 1)
                self.headers.append((name.strip().lower(), value.strip()))

    def get(self, name):
        return [v for n, v in self.headers if n == name.lower()]

    def one(self, name):
        values = self.get(name)
        return values[0] if values else None


class Connection:
    """A TLS connection framing SIP responses by CRLFCRLF and Content-Length."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def local(self):
        host, port = self.sock.getsockname()[:2]
        return f"{host}:{port}"

    def exchange(self, request):
        self.sock.sendall(request)
        return self.read()

    def read(self):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                response = Response(self.buf[: end + 2])
                length = int(response.one("content-length") or response.one("l") or 0)
                total = end + 4 + length
                if len(self.buf) >= total:
                    self.buf = self.buf[total:]
                    return response
            data = self.sock.recv(65536)
            if not data:
                raise Failure("the server closed the connection before answering")
            self.buf += data


def connect(host, port, context):
    raw = socket.create_connection((host, port), timeout=5)
    try:
        sock = context.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise
    return Connection(sock)


def expect(cond, what):
    if not cond:
        raise Failure(what)


def jabber_exchange(conn, device, label):
    """The seed: 407 with the Bearer challenge, then 200 with the token."""
    r = conn.exchange(device.register())
    expect(r.status == 407, f"{label}: REGISTER without credentials got {r.first!r}, want 407")
    challenge = r.one("proxy-authenticate") or ""
    expect(
        challenge.startswith("Bearer") and 'realm="ccmsipline"' in challenge,
        f"{label}: 407 has Proxy-Authenticate {challenge!r}, want Bearer realm=\"ccmsipline\"",
    )
    r = conn.exchange(device.register(device.token))
    expect(r.status == 200, f"{label}: REGISTER with the token got {r.first!r}, want 200")
    expect(r.one("call-id") == device.call_id, f"{label}: 200 echoes Call-ID {r.one('call-id')!r}")
    expect(r.one("cseq") == f"{device.cseq} REGISTER", f"{label}: 200 echoes CSeq {r.one('cseq')!r}")
    expect(";tag=" in (r.one("to") or ""), f"{label}: 200 has no To tag: {r.one('to')!r}")
    expires = r.one("expires")
    expect(
        expires is not None and expires.isdigit() and 0 < int(expires) <= 3600,
        f"{label}: 200 has Expires {expires!r}",
    )
    contacts = ",".join(r.get("contact") + r.get("m"))
    expect(device.uuid in contacts, f"{label}: 200 does not list the Contact: {contacts!r}")
    return int(expires)


def check_oauth(args, devices, version):
    label = f"oauth {version.name}"
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    ctx.minimum_version = ctx.maximum_version = version
    conn = connect(args.host, args.oauth_port, ctx)
    with conn.sock:
        expect(conn.sock.version() == {
            ssl.TLSVersion.TLSv1_3: "TLSv1.3", ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version],
            f"{label}: negotiated {conn.sock.version()}")
        user, token = devices[0]
        # A token that does not verify: 407 with error="invalid_token".
        bad = Device(user, token, args.domain, conn.local())
        forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
        r = conn.exchange(bad.register(forged))
        expect(r.status == 407, f"{label}: a forged token got {r.first!r}, want 407")
        expect('error="invalid_token"' in (r.one("proxy-authenticate") or ""),
               f"{label}: 407 for a forged token lacks error=\"invalid_token\": {r.one('proxy-authenticate')!r}")
        device = Device(user, token, args.domain, conn.local())
        expires = jabber_exchange(conn, device, label)
        cipher = conn.sock.cipher()[0]
    print(f"ok   {label}: server certificate verified, 407 Bearer challenge, forged token 407 "
          f"invalid_token, 200 with Expires {expires} ({cipher})")


def check_mra(args, devices):
    label = "mra mutual TLS"
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    ctx.load_cert_chain(args.client_cert, args.client_key)
    conn = connect(args.host, args.mra_port, ctx)
    with conn.sock:
        for user, token in devices:
            jabber_exchange(conn, Device(user, token, args.domain, conn.local()), label)
        version = conn.sock.version()
    print(f"ok   {label}: Expressway-C certificate accepted, {len(devices)} devices 407 -> 200 "
          f"over one connection ({version})")


def check_mra_refuses_anonymous(args, devices):
    label = "mra without a client certificate"
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    user, token = devices[0]
    try:
        conn = connect(args.host, args.mra_port, ctx)
    except (ssl.SSLError, ConnectionError, socket.timeout) as e:
        print(f"ok   {label}: refused in the handshake ({type(e).__name__}: {e})")
        return
    # TLS 1.3: the client finishes its handshake before the server sees that no certificate
    # came; the refusal arrives as an alert or a close on the first read.
    with conn.sock:
        try:
            r = conn.exchange(Device(user, token, args.domain, conn.local()).register(token))
        except (ssl.SSLError, ConnectionError, socket.timeout, Failure) as e:
            print(f"ok   {label}: refused after the handshake ({type(e).__name__}: {e})")
            return
        raise Failure(f"{label}: the server answered {r.first!r}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--domain", default="10.10.10.1")
    p.add_argument("--oauth-port", type=int, required=True)
    p.add_argument("--mra-port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--client-cert", required=True)
    p.add_argument("--client-key", required=True)
    p.add_argument("--device", action="append", required=True, metavar="USER=TOKEN",
                   help="a user and its token (sub = USER, dev = CSF<USER>); repeat for more")
    args = p.parse_args()
    devices = [tuple(d.split("=", 1)) for d in args.device]
    print(f"== TLS interop: {ssl.OPENSSL_VERSION}, Python {sys.version.split()[0]}")
    try:
        check_oauth(args, devices, ssl.TLSVersion.TLSv1_3)
        check_oauth(args, devices, ssl.TLSVersion.TLSv1_2)
        check_mra(args, devices)
        check_mra_refuses_anonymous(args, devices)
    except Failure as e:
        print(f"interop_tls: {e}", file=sys.stderr)
        return 1
    except (OSError, ssl.SSLError) as e:
        print(f"interop_tls: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
