"""Signers for the gateway tests, independent of ossbridge's Rust code.

  signers.py standard-webhooks SECRET MSG_ID UNIX_TIMESTAMP   < body
      prints the webhook-signature value, computed by the PyPI
      `standardwebhooks` package (the reference implementation).

  signers.py mns KEY_PEM < request.json
      request.json: {"method", "resource", "headers": {name: value}};
      prints the base64 RSA-SHA1 (PKCS#1 v1.5) signature over the MNS
      string-to-sign, built here from Aliyun's documentation.
"""

import base64
import datetime
import json
import sys


def standard_webhooks(secret: str, msg_id: str, timestamp: str) -> None:
    from standardwebhooks.webhooks import Webhook

    body = sys.stdin.buffer.read().decode("utf-8")
    when = datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.timezone.utc)
    sys.stdout.write(Webhook(secret).sign(msg_id, when, body))


def mns_string_to_sign(method: str, resource: str, headers: dict) -> str:
    lower = {k.lower(): v for k, v in headers.items()}
    parts = [method.upper()] + [lower.get(h, "") for h in ("content-md5", "content-type", "date")]
    canonical = "".join(f"{k}:{lower[k]}\n" for k in sorted(lower) if k.startswith("x-mns-"))
    return "\n".join(parts) + "\n" + canonical + resource


def mns(key_pem: str) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    request = json.load(sys.stdin)
    with open(key_pem, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    text = mns_string_to_sign(request["method"], request["resource"], request["headers"])
    signature = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())
    sys.stdout.write(base64.b64encode(signature).decode("ascii"))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"standard-webhooks": standard_webhooks, "mns": mns}[command](*args)
