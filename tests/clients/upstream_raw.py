#!/usr/bin/env python3
"""A minimal upstream for exact wire assertions in the hubmq e2e suite (tests/e2e/upstream.rs).

Prints {"port": N} once listening, then one JSON line per request: method, path, headers as a
list of [name, value] pairs in arrival order, body as base64. Answers:
  OPTIONS *           200, WebHook-Allowed-Origin: *
  POST .../connect    200, JSON body (userId u1, roles to send/join any group) and ce-connectionState
  POST .../getTime    200, text/plain, mqtt-served-by: node-3, body 08:01:00
  POST .../bad        400, text/plain, body "unknown tz"
  anything else       200, empty
"""
import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def log(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, body):
        log({
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": base64.b64encode(body).decode(),
        })

    def answer(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self):
        self.record(b"")
        self.answer(200, [("WebHook-Allowed-Origin", "*")], b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        self.record(body)
        last = self.path.rstrip("/").rsplit("/", 1)[-1]
        if last == "connect":
            out = json.dumps({"userId": "u1",
                              "roles": ["webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"]}).encode()
            self.answer(200, [("Content-Type", "application/json; charset=utf-8"),
                              ("ce-connectionState", "eyJ0ZW5hbnQiOiJ0MSJ9")], out)
        elif last == "getTime":
            self.answer(200, [("Content-Type", "text/plain"), ("mqtt-served-by", "node-3")], b"08:01:00")
        elif last == "bad":
            self.answer(400, [("Content-Type", "text/plain")], b"unknown tz")
        else:
            self.answer(200, [], b"")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    log({"port": server.server_address[1]})
    server.serve_forever()


if __name__ == "__main__":
    main()
