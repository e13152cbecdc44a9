#!/usr/bin/python3
"""shop-frontend: serves the Acme shop front page."""
import argparse
import http.server
import sys
import time

PAGE = b"""<!doctype html>
<html><head><title>Acme Shop</title></head>
<body><h1>Acme Shop</h1><p>Today's deals: 3 widgets for the price of 2.</p>
<!-- shop-frontend build 4.2.1 -->
</body></html>
"""


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "shop-frontend/4.2.1"

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)
        else:
            self.send_error(404)

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), fmt % args))
        sys.stdout.flush()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8080)
    args = p.parse_args()
    print(time.strftime("%Y-%m-%dT%H:%M:%S"), f"shop-frontend 4.2.1 starting on 0.0.0.0:{args.port}", flush=True)
    try:
        server = http.server.ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    except OSError as e:
        print(time.strftime("%Y-%m-%dT%H:%M:%S"), f"FATAL cannot bind 0.0.0.0:{args.port}: {e}", flush=True)
        return 1
    print(time.strftime("%Y-%m-%dT%H:%M:%S"), f"listening on 0.0.0.0:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
