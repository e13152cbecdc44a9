#!/usr/bin/python3
"""catalog-api: serves the price list. GET /v1/prices, GET /health."""
import argparse
import http.server
import json
import time

PRICES = {"source": "catalog-api", "version": "2.0",
          "prices": {"widget": 4.99, "gadget": 12.50, "gizmo": 7.25}}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "catalog-api/2.0"

    def do_GET(self):
        if self.path == "/v1/prices":
            body, ctype = json.dumps(PRICES).encode() + b"\n", "application/json"
        elif self.path == "/health":
            body, ctype = b"ok\n", "text/plain"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print(time.strftime("%Y-%m-%dT%H:%M:%S"), self.client_address[0], fmt % args, flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--bind", default="10.20.0.5")
    p.add_argument("--port", type=int, default=9000)
    a = p.parse_args()
    http.server.ThreadingHTTPServer((a.bind, a.port), Handler).serve_forever()
