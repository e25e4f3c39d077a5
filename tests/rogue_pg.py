#!/usr/bin/env python3
"""A rogue PostgreSQL server for warden_db's attack tests: it answers on a loopback port the
way a malicious peer at the db jail's address could, and records everything the client sends.

    rogue_pg.py --record FILE [--host 127.0.0.1] [--ssl no|yes] [--cert PEM --key PEM]
                [--auth cleartext|md5|scram|scram-noplus|ok|silent] [--iterations N] [--hang]

It prints `PORT <n>` once listening, then serves connections until killed. Each connection
appends JSON lines to FILE: `{"conn": n, "event": "ssl_request"}`, `"startup"` (with the
startup parameters), and `"message"` for every later frontend message (`type` and `body`,
the body as Latin-1 so any byte sequence survives). Nothing is answered beyond what the mode
says; after the client's answer to an authentication request the connection gets an
ErrorResponse and is closed.

The wire format is PostgreSQL's protocol 3.0 (postgres/postgres, doc/src/sgml/protocol.sgml,
"Message Formats"): SSLRequest code 80877103, the one-byte `S`/`N` answer, StartupMessage
(version 196608), AuthenticationOk (0), CleartextPassword (3), MD5Password (5, 4-byte salt),
SASL (10, mechanism list), SASLContinue (11, RFC 5802 server-first-message).
"""

import argparse
import base64
import json
import os
import socket
import ssl
import struct
import threading

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_untyped(conn):
    (length,) = struct.unpack("!I", read_exact(conn, 4))
    return read_exact(conn, length - 4)


def read_typed(conn):
    kind = read_exact(conn, 1)
    (length,) = struct.unpack("!I", read_exact(conn, 4))
    return kind.decode("latin-1"), read_exact(conn, length - 4)


def message(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


def auth(code, rest=b""):
    return message(b"R", struct.pack("!i", code) + rest)


def error(text):
    fields = b"SFATAL\0C28P01\0M" + text.encode() + b"\0\0"
    return message(b"E", fields)


class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, conn_id, event, **fields):
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"conn": conn_id, "event": event, **fields}) + "\n")
            out.flush()
            os.fsync(out.fileno())


def serve(conn, conn_id, args, record):
    conn.settimeout(60)
    if args.auth == "silent":
        # Accepts and never answers: the client must give up by itself.
        while conn.recv(4096):
            pass
        return
    body = read_untyped(conn)
    (code,) = struct.unpack("!I", body[:4])
    while code in (SSL_REQUEST, GSSENC_REQUEST):
        record(conn_id, "ssl_request" if code == SSL_REQUEST else "gssenc_request")
        if code == SSL_REQUEST and args.ssl == "yes":
            conn.sendall(b"S")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(args.cert, args.key)
            conn = context.wrap_socket(conn, server_side=True)
            record(conn_id, "tls")
        else:
            conn.sendall(b"N")
        body = read_untyped(conn)
        (code,) = struct.unpack("!I", body[:4])
    items = body[4:].split(b"\0")
    params = {items[i].decode("latin-1"): items[i + 1].decode("latin-1") for i in range(0, len(items) - 1, 2) if items[i]}
    record(conn_id, "startup", params=params)

    def next_message():
        kind, data = read_typed(conn)
        record(conn_id, "message", type=kind, body=data.decode("latin-1"))
        return kind, data

    if args.auth == "cleartext":
        conn.sendall(auth(3))
        next_message()
    elif args.auth == "md5":
        conn.sendall(auth(5, os.urandom(4)))
        next_message()
    elif args.auth in ("scram", "scram-noplus"):
        mechanisms = [b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256"] if args.auth == "scram" else [b"SCRAM-SHA-256"]
        conn.sendall(auth(10, b"".join(m + b"\0" for m in mechanisms) + b"\0"))
        _, data = next_message()
        # SASLInitialResponse: mechanism, int32 length, client-first-message.
        _mechanism, rest = data.split(b"\0", 1)
        first = rest[4:].decode("latin-1")
        nonce = next(attr[2:] for attr in first.split(",") if attr.startswith("r="))
        salt = base64.b64encode(os.urandom(16)).decode()
        server_first = f"r={nonce}rogue{os.urandom(6).hex()},s={salt},i={args.iterations}"
        conn.sendall(auth(11, server_first.encode()))
        next_message()
    elif args.auth == "ok":
        conn.sendall(
            auth(0)
            + message(b"S", b"server_version\x0015.0\0")
            + message(b"K", struct.pack("!ii", 4242, 4242))
            + message(b"Z", b"I")
        )
        while True:
            kind, _ = next_message()
            if kind == "X":
                return
            if not args.hang:
                conn.sendall(error("rogue"))
    conn.sendall(error("rogue server"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ssl", choices=["no", "yes"], default="no")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth", choices=["cleartext", "md5", "scram", "scram-noplus", "ok", "silent"], default="cleartext")
    parser.add_argument("--iterations", type=int, default=4096)
    parser.add_argument("--hang", action="store_true", help="with --auth ok: never answer a query")
    args = parser.parse_args()
    record = Recorder(args.record)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, 0))
    listener.listen(8)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    conn_id = 0
    while True:
        conn, _ = listener.accept()
        conn_id += 1

        def run(conn=conn, conn_id=conn_id):
            try:
                serve(conn, conn_id, args, record)
            except (EOFError, OSError, ssl.SSLError, ValueError, StopIteration) as e:
                record(conn_id, "closed", reason=type(e).__name__)
            finally:
                conn.close()

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    main()
