"""A loopback HTTP proxy in front of a Directus that a test controls (fault and bad-input tests).

proxy.fail = True       every request is answered 500 INTERNAL_SERVER_ERROR (ping included)
proxy.delay = 2.0       every request waits that long first
proxy.spoil("garbage", n)   the next n writes (POST/PATCH/DELETE of /items) never reach Directus:
                            a 200 whose body is not JSON answers them (a maintenance page)
proxy.spoil("truncate", n)  ... becomes the first half of the real body, then the connection
                            closes (Content-Length promises the whole)"""
import http.client, http.server, threading, time, urllib.parse


class Proxy:
    def __init__(self, target):
        self.target = urllib.parse.urlsplit(target)
        self.fail = False
        self.delay = 0.0
        self.requests = self.failed = self.spoiled = 0
        self.spoil_mode, self.spoil_left = None, 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, headers, body, promised=None):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if promised is None else promised))
                self.end_headers()
                self.wfile.write(body)

            def relay(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                proxy.requests += 1
                if proxy.delay:
                    time.sleep(proxy.delay)
                if proxy.fail:
                    proxy.failed += 1
                    return self.answer(500, [("Content-Type", "application/json; charset=utf-8")],
                                       b'{"errors":[{"message":"injected by the fault proxy",'
                                       b'"extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}')
                mode = proxy.take_spoil(self.command, self.path)
                if mode == "garbage":   # a maintenance page: the write never reaches Directus
                    return self.answer(200, [("Content-Type", "text/html")], b"<html><body>back soon</body></html>")
                conn = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=60)
                try:
                    hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body, headers=hdrs)
                    r = conn.getresponse()
                    out = r.read()
                    headers = [(k, v) for k, v in r.getheaders()
                               if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive")]
                except OSError:
                    return self.answer(502, [], b"")
                finally:
                    conn.close()
                if mode == "truncate" and len(out) > 1:
                    self.answer(r.status, headers, out[:len(out) // 2], promised=len(out))
                    self.close_connection = True
                    return None
                return self.answer(r.status, headers, out)

            do_GET = do_POST = do_PATCH = do_DELETE = do_SEARCH = relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spoil(self, mode, n):
        with self.lock:
            self.spoil_mode, self.spoil_left = mode, n

    def take_spoil(self, method, path):
        if method not in ("POST", "PATCH", "DELETE") or not path.startswith("/items/"):
            return None
        with self.lock:
            if not self.spoil_left:
                return None
            self.spoil_left -= 1
            self.spoiled += 1
            return self.spoil_mode
