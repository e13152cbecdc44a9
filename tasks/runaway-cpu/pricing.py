#!/usr/bin/python3
"""pricing: quotes prices. GET /quote?sku=ABC-123 -> JSON. GET /health -> ok."""
import hashlib
import http.server
import json
import sys
import time
import urllib.parse

PORT = 9100


def price_for(sku):
    # The "pricing model": a few thousand rounds of hashing (~40 ms of CPU).
    h = sku.encode()
    for _ in range(30000):
        h = hashlib.sha256(h).digest()
    return round(5 + int.from_bytes(h[:4], "big") % 9500 / 100, 2)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "pricing/2.3"

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/health":
            body, code = b"ok\n", 200
        elif url.path == "/quote":
            sku = urllib.parse.parse_qs(url.query).get("sku", ["DEFAULT"])[0]
            t0 = time.monotonic()
            price = price_for(sku)
            ms = (time.monotonic() - t0) * 1000
            body, code = (json.dumps({"sku": sku, "price": price, "compute_ms": round(ms)}) + "\n").encode(), 200
            if ms > 200:
                self.log_message("SLOW quote sku=%s took %d ms", sku, ms)
        else:
            body, code = b"not found\n", 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if code == 200 else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), fmt % args))
        sys.stdout.flush()


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    print(time.strftime("%Y-%m-%dT%H:%M:%S"), f"pricing listening on 127.0.0.1:{PORT}", flush=True)
    server.serve_forever()
