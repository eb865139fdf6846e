"""HTTPS servers on 127.0.0.1 playing Aliyun's MNS certificate host.

  cert_server.py DIR

Generates into DIR a CA (ca.pem), a server certificate for 127.0.0.1 signed
by it, and an MNS signing key (signing-key.pem) with its self-signed
certificate. Starts two HTTPS servers on OS-picked ports:

  main:  /cert.pem      the signing certificate
         /aliyun-512.pem  a certificate shaped like Aliyun's real one: a
                        512-bit RSA key (made by the openssl CLI, since
                        `cryptography` refuses to generate one), self-signed,
                        expired on 2016-07-01 (legacy-signing-key.pem)
         /redirect      302 to https://127.0.0.1:<other>/cert.pem
         /large         a body of 1 MiB
         /slow          answers after 30 s
  other: /cert.pem      the same certificate (a host the gateway must not use)

Prints one JSON line {"port", "other_port", "ca", "signing_key",
"other_signing_key", "legacy_signing_key"} and serves until stdin closes. GET /stats on either
server reports the connections each server has accepted so far, so a test
can show that a refused URL was never contacted, and how often /cert.pem
was fetched.
"""

import datetime
import http.server
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CONNECTIONS = {"main": 0, "other": 0, "fetches": 0}
LOCK = threading.Lock()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificate(subject, key, issuer, issuer_key, ca=False, ip=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_handler(name, signing_cert, other_port, legacy_cert=b""):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, status, body, headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/cert.pem":
                with LOCK:
                    CONNECTIONS["fetches"] += 1
                self.send(200, signing_cert)
            elif self.path == "/aliyun-512.pem":
                with LOCK:
                    CONNECTIONS["fetches"] += 1
                self.send(200, legacy_cert)
            elif self.path == "/stats":
                with LOCK:
                    self.send(200, json.dumps(CONNECTIONS).encode())
            elif self.path == "/redirect":
                self.send(302, b"", [("Location", f"https://127.0.0.1:{other_port}/cert.pem")])
            elif self.path == "/large":
                self.send(200, b"-" * (1024 * 1024))
            elif self.path == "/slow":
                time.sleep(30)
                self.send(200, signing_cert)
            else:
                self.send(404, b"")

    return Handler


class CountingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name, *args):
        self.name = name
        super().__init__(*args)

    def handle_error(self, request, client_address):
        # Clients hanging up mid-response (the gateway refusing /large) are
        # expected here.
        pass

    def verify_request(self, request, client_address):
        with LOCK:
            CONNECTIONS[self.name] += 1
        return True


def main():
    out = sys.argv[1]
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = certificate("ossbridge test CA", ca_key, "ossbridge test CA", ca_key, ca=True)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_cert = certificate("127.0.0.1", server_key, "ossbridge test CA", ca_key, ip="127.0.0.1")
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_cert = certificate("mns signing", signing_key, "mns signing", signing_key)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    legacy_key_path = os.path.join(out, "legacy-signing-key.pem")
    subprocess.run(
        ["openssl", "genrsa", "-out", legacy_key_path, "512"], check=True, capture_output=True
    )
    with open(legacy_key_path, "rb") as f:
        legacy_key = serialization.load_pem_private_key(f.read(), password=None)
    assert legacy_key.key_size == 512
    legacy_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mnstest")])
    legacy_cert = (
        x509.CertificateBuilder()
        .subject_name(legacy_name)
        .issuer_name(legacy_name)
        .public_key(legacy_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime(2014, 7, 1, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(2016, 7, 1, tzinfo=datetime.timezone.utc))
        .sign(legacy_key, hashes.SHA256())
    )

    write(os.path.join(out, "ca.pem"), ca.public_bytes(serialization.Encoding.PEM))
    write(os.path.join(out, "server.pem"), server_cert.public_bytes(serialization.Encoding.PEM))
    write(os.path.join(out, "server-key.pem"), key_pem(server_key))
    write(os.path.join(out, "signing-key.pem"), key_pem(signing_key))
    write(os.path.join(out, "other-signing-key.pem"), key_pem(other_key))

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(out, "server.pem"), os.path.join(out, "server-key.pem"))
    cert_pem = signing_cert.public_bytes(serialization.Encoding.PEM)

    other = CountingServer("other", ("127.0.0.1", 0), make_handler("other", cert_pem, 0))
    other.socket = context.wrap_socket(other.socket, server_side=True)
    other_port = other.server_address[1]
    legacy_pem = legacy_cert.public_bytes(serialization.Encoding.PEM)
    main_server = CountingServer(
        "main", ("127.0.0.1", 0), make_handler("main", cert_pem, other_port, legacy_pem)
    )
    main_server.socket = context.wrap_socket(main_server.socket, server_side=True)
    for s in (other, main_server):
        threading.Thread(target=s.serve_forever, daemon=True).start()

    print(
        json.dumps(
            {
                "port": main_server.server_address[1],
                "other_port": other_port,
                "ca": os.path.join(out, "ca.pem"),
                "signing_key": os.path.join(out, "signing-key.pem"),
                "other_signing_key": os.path.join(out, "other-signing-key.pem"),
                "legacy_signing_key": legacy_key_path,
            }
        ),
        flush=True,
    )
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
