"""Start moto (S3, SQS, SSM emulator) on 127.0.0.1 for ossbridge's tests and demo.

Usage: moto_server.py [PORT]   (default 0: the OS picks a free port)

Prints "READY <port>" on stdout once it accepts connections, then serves
until its stdin closes. The parent keeps the pipe open, so the emulator
never outlives the test or demo that started it, even after a SIGKILL.
"""

import os
import sys

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _, bound = server.get_host_and_port()
    print(f"READY {bound}", flush=True)
    # Block until the parent goes away (EOF on stdin), then exit at once.
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
