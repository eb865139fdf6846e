"""AWS-side helper for deploy/image/check-runtime.sh (run with the
project's moto virtualenv python, which has boto3).

  check_helper.py free-ports N            N free TCP ports on 127.0.0.1
  check_helper.py setup ENDPOINT          buckets, queue, SSM keys, source object;
                                          prints the queue URL
  check_helper.py event                   the OSS event (stdout) for that object
  check_helper.py queue-depth ENDPOINT    visible + in-flight messages on the queue
  check_helper.py copied ENDPOINT         exit 0 when the object is in the
                                          destination, byte-identical
  check_helper.py tls-proxy CERT KEY UPSTREAM_PORT
                                          TLS on a free 127.0.0.1 port, plain TCP
                                          to the upstream; prints "READY <port>",
                                          serves until stdin closes
"""

import hashlib
import json
import os
import socket
import ssl
import sys
import threading

REGION = "us-east-1"
SOURCE_BUCKET = "oss-source"
DESTINATION_BUCKET = "s3-destination"
QUEUE = "ossbridge-jobs"
PARAMETER = "/ossbridge/oss-keys"
KEY = "photos/2026/11/20/IMG_0042.jpg"
FIXTURE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "../../tests/fixtures/oss-events/put-object.json",
)


def body() -> bytes:
    # Deterministic, incompressible bytes (not a run of one byte).
    x, out = 42 | 1, bytearray()
    for _ in range(122_539):
        x ^= (x << 13) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 7
        x ^= (x << 17) & 0xFFFFFFFFFFFFFFFF
        out.append(x & 0xFF)
    return bytes(out)


def client(service: str, endpoint: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def free_ports(n: int) -> None:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def setup(endpoint: str) -> None:
    s3 = client("s3", endpoint)
    for bucket in (SOURCE_BUCKET, DESTINATION_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=SOURCE_BUCKET, Key=KEY, Body=body())
    client("ssm", endpoint).put_parameter(
        Name=PARAMETER,
        Type="SecureString",
        Overwrite=True,
        Value=json.dumps({"access_key_id": "test", "secret_access_key": "test"}),
    )
    print(client("sqs", endpoint).create_queue(QueueName=QUEUE)["QueueUrl"])


def event() -> None:
    data = body()
    fixture = json.load(open(FIXTURE))
    e = fixture["events"][0]
    e["oss"]["bucket"]["name"] = SOURCE_BUCKET
    e["oss"]["object"]["key"] = KEY
    e["oss"]["object"]["size"] = len(data)
    e["oss"]["object"]["eTag"] = hashlib.md5(data).hexdigest().upper()
    print(json.dumps({"events": [e]}))


def queue_depth(endpoint: str) -> None:
    sqs = client("sqs", endpoint)
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    print(int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]))


def copied(endpoint: str) -> None:
    s3 = client("s3", endpoint)
    try:
        got = s3.get_object(Bucket=DESTINATION_BUCKET, Key=KEY)["Body"].read()
    except s3.exceptions.NoSuchKey:
        sys.exit(1)
    sys.exit(0 if got == body() else 3)


def tls_proxy(cert: str, key: str, upstream: int) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve(conn):
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            # A client that rejects the certificate ends up here.
            print(f"tls-proxy: handshake failed: {e}", file=sys.stderr, flush=True)
            conn.close()
            return
        up = socket.create_connection(("127.0.0.1", upstream))
        threading.Thread(target=pump, args=(tls, up), daemon=True).start()
        pump(up, tls)

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    print(f"READY {listener.getsockname()[1]}", flush=True)
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "free-ports":
        free_ports(int(args[0]))
    elif cmd == "setup":
        setup(args[0])
    elif cmd == "event":
        event()
    elif cmd == "queue-depth":
        queue_depth(args[0])
    elif cmd == "copied":
        copied(args[0])
    elif cmd == "tls-proxy":
        tls_proxy(args[0], args[1], int(args[2]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
