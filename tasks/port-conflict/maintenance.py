#!/usr/bin/python3
# Maintenance page, put up by hand during the last deploy "for five minutes".
import ctypes
import http.server
import signal
import sys

TITLE = "nginx: master process /usr/sbin/nginx -g daemon off;"
PAGE = b"<html><body><h1>503 Service Unavailable</h1><p>Down for maintenance, back soon.</p></body></html>\n"


def set_title(title):
    """Look like nginx in ps/top/ss: comm via prctl, argv rewritten in place."""
    ctypes.CDLL(None).prctl(15, b"nginx", 0, 0, 0)
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])
    raw = title.encode()[: end - start - 1]
    with open("/proc/self/mem", "r+b", buffering=0) as mem:
        mem.seek(start)
        mem.write(raw + b"\0" * (end - start - len(raw)))


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "nginx"

    def do_GET(self):
        self.send_response(503)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


# "Graceful" shutdown that never finishes.
signal.signal(signal.SIGTERM, lambda *a: print("draining connections...", flush=True))
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
server = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
try:
    set_title(TITLE)
except OSError:
    pass
server.serve_forever()
