"""Aliyun Function Compute forwarder: OSS trigger -> ossbridge gateway.

Replaces the Data Transfer Hub tutorial's boto3 sender. Instead of holding
AWS keys and calling SQS, it POSTs the OSS event notification, unchanged,
to the gateway, signed with Standard Webhooks
(https://www.standardwebhooks.com/): the only secret on Aliyun is the
webhook secret, and the gateway enqueues the events on SQS itself.

Python 3 standard library only, so the function is one file with no
layer or package to build.

Environment:
  OSSBRIDGE_GATEWAY_URL     required, https://GATEWAY/v1/ingest/SOURCE_ID
  OSSBRIDGE_WEBHOOK_SECRET  required, whsec_... (the source's verifier secret)
  OSSBRIDGE_CA_FILE         optional, PEM roots to trust instead of the
                            system's (a private CA or a test certificate)
  OSSBRIDGE_ATTEMPTS        optional, POST attempts per invocation (default 4)
  OSSBRIDGE_TIMEOUT_SECS    optional, per-attempt timeout (default 10)

FC handler: index.handler. Outside FC, `python3 index.py < event.json`
forwards one event body read from stdin and exits non-zero on failure.
"""

import base64
import hashlib
import hmac
import json
import os
import random
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid

# Statuses worth another attempt: the gateway answers 503 (SQS not
# reachable, not ready), 429 (rate limit) and 408 (slow body) only for
# conditions that pass. Any other 4xx (bad signature, unknown source,
# malformed body) would fail the same way again.
RETRYABLE = {408, 429, 500, 502, 503, 504}
MAX_BACKOFF_SECS = 8.0


class ForwardError(Exception):
    """The gateway did not accept the event. Raised out of the handler so
    that FC's asynchronous invocation retries it (and, after its retries,
    sends it to the function's failure destination)."""


def _setting(name, default=None):
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ForwardError(f"{name} is not set")
    return value


def _key(secret):
    if not secret.startswith("whsec_"):
        raise ForwardError("OSSBRIDGE_WEBHOOK_SECRET must start with whsec_")
    encoded = secret[len("whsec_"):]
    # The gateway accepts the secret with or without base64 padding.
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)


def sign(key, msg_id, timestamp, body):
    """`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _body(event):
    """FC's OSS trigger passes the notification as bytes; accept str and
    an already-parsed dict too. The body is forwarded as received (the
    signature covers these exact bytes), after checking it is an OSS event
    notification, so a misconfigured trigger fails here, not at the gateway."""
    if isinstance(event, dict):
        event = json.dumps(event, ensure_ascii=False)
    if isinstance(event, str):
        event = event.encode("utf-8")
    try:
        parsed = json.loads(event)
    except ValueError as e:
        raise ForwardError(f"the event is not JSON: {e}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("events"), list):
        raise ForwardError('the event is not an OSS notification {"events": [...]}')
    return event


def _retry_after(error):
    value = error.headers.get("Retry-After") if error.headers else None
    try:
        return min(float(value), MAX_BACKOFF_SECS) if value else None
    except ValueError:
        return None


def forward(event):
    """POSTs one OSS event notification; returns the gateway's JSON answer.
    Raises ForwardError when every attempt failed."""
    url = _setting("OSSBRIDGE_GATEWAY_URL")
    key = _key(_setting("OSSBRIDGE_WEBHOOK_SECRET"))
    attempts = max(1, int(_setting("OSSBRIDGE_ATTEMPTS", "4")))
    timeout = float(_setting("OSSBRIDGE_TIMEOUT_SECS", "10"))
    ca_file = os.environ.get("OSSBRIDGE_CA_FILE") or None
    context = ssl.create_default_context(cafile=ca_file)
    body = _body(event)
    # One id for every attempt: it names this delivery, and the gateway
    # deduplicates retried deliveries by their content anyway.
    msg_id = "msg_" + uuid.uuid4().hex

    last = "no attempt made"
    for attempt in range(1, attempts + 1):
        # Signed afresh each attempt: the gateway accepts a timestamp only
        # within its tolerance (5 minutes by default) of its own clock.
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "content-type": "application/json",
                "user-agent": "ossbridge-fc-forwarder/1",
                "webhook-id": msg_id,
                "webhook-timestamp": timestamp,
                "webhook-signature": sign(key, msg_id, timestamp, body),
            },
        )
        delay = None
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                text = response.read().decode("utf-8", "replace")
                try:
                    return json.loads(text)
                except ValueError:
                    # 2xx is what matters (204 for some formats, no body).
                    return {"status": response.status}
        except urllib.error.HTTPError as e:
            reason = e.read(512).decode("utf-8", "replace").strip()
            last = f"HTTP {e.code}: {reason}"
            if e.code not in RETRYABLE:
                raise ForwardError(f"gateway refused the event: {last}") from None
            delay = _retry_after(e)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            # Connection refused or reset, DNS, TLS, timeout: all transient
            # from here (a bad CA file fails every attempt and is reported).
            last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        if attempt < attempts:
            backoff = delay if delay is not None else min(MAX_BACKOFF_SECS, 0.5 * 2 ** (attempt - 1))
            # Jitter, so many functions retrying after one outage spread out.
            time.sleep(backoff * random.uniform(0.5, 1.0) if delay is None else backoff)
    raise ForwardError(f"gateway did not accept the event after {attempts} attempts: {last}")


def handler(event, context):
    """FC entry point (OSS trigger: `event` is the notification as bytes)."""
    answer = forward(event)
    # FC's log: what the gateway did, never the secret or the body.
    print(json.dumps({"forwarded": answer}), flush=True)
    return json.dumps(answer)


def main():
    try:
        answer = forward(sys.stdin.buffer.read())
    except ForwardError as e:
        print(f"fc-forwarder: {e}", file=sys.stderr)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
