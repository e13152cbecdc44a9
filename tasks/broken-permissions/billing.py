#!/usr/bin/python3
"""billing: answers GET /health with the state of its configuration.

Reads /etc/billing/billing.conf on every request (no restart needed after config changes).
Runs as the unprivileged user "billing" (see start.sh).
"""
import configparser
import http.server
import os
import pwd
import sys
import time

CONF = "/etc/billing/billing.conf"
PORT = 8081


def log(msg):
    print(time.strftime("%Y-%m-%dT%H:%M:%S"), msg, flush=True)


def load():
    cp = configparser.ConfigParser()
    with open(CONF) as f:
        cp.read_file(f)
    db = cp["database"]
    return "%s@%s/%s" % (db["user"], db["host"], db["name"]), bool(db.get("password"))


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "billing/1.8"

    def do_GET(self):
        if self.path != "/health":
            self.reply(404, "not found\n")
            return
        try:
            dsn, has_password = load()
        except OSError as e:
            log("ERROR cannot read %s: %s" % (CONF, e))
            self.reply(503, "ERROR: cannot read config %s: %s\n" % (CONF, e.strerror))
            return
        except (configparser.Error, KeyError) as e:
            log("ERROR bad config %s: %s" % (CONF, e))
            self.reply(503, "ERROR: bad config: %s\n" % e)
            return
        if not has_password:
            self.reply(503, "ERROR: no database password configured\n")
            return
        self.reply(200, "OK: config loaded, ledger db %s\n" % dsn)

    def reply(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    log("billing starting as user %s (uid %d)" % (pwd.getpwuid(os.getuid()).pw_name, os.getuid()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    log("listening on 127.0.0.1:%d" % PORT)
    server.serve_forever()
