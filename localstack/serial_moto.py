"""moto server with one DynamoDB request handled at a time.

moto's DynamoDB backend checks a write's condition and then writes, with no lock between the two,
and `moto_server` handles requests on many threads: two racing conditional PutItems can then both
succeed, which real DynamoDB never allows. Serializing DynamoDB requests makes each of them atomic, as
it is on AWS, at no cost in throughput (the GIL serializes moto's work anyway).

Only DynamoDB (and its Streams API): an SQS ReceiveMessage long poll waits inside moto for up to 20 s,
and holding the lock meanwhile would stall every other test's requests.

Usage: serial_moto.py HOST PORT
"""

import os
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return app(environ, start_response)
        with lock:
            # Consume the whole response inside the lock: the work happens while it is produced.
            return list(app(environ, start_response))

    run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
