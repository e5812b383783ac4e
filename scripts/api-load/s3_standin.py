"""A minimal S3 stand-in for running the REAL api code locally (scripts/api-load.ts --app-dir).

Implements only the calls the api makes through boto3, path-style, without checking
signatures: ListBuckets (GET /), CreateBucket (PUT /bucket), HeadBucket, PutObject
(PUT /bucket/key), GetObject (GET /bucket/key). Objects live in memory. Not a test of S3.
Usage: s3_standin.py ADDRESS PORT
"""
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

buckets = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, code, body=b"", ctype="application/xml", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _parts(self):
        path = self.path.split("?")[0].lstrip("/")
        bucket, _, key = path.partition("/")
        return bucket, key

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n)
        if "aws-chunked" in (self.headers.get("Content-Encoding") or ""):
            out, rest = b"", data
            while rest:
                line, _, rest = rest.partition(b"\r\n")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    break
                out, rest = out + rest[:size], rest[size + 2:]
            data = out
        return data

    def do_GET(self):
        bucket, key = self._parts()
        if not bucket:
            items = "".join(f"<Bucket><Name>{b}</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate></Bucket>" for b in buckets)
            return self._send(200, f'<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Owner><ID>x</ID></Owner><Buckets>{items}</Buckets></ListAllMyBucketsResult>'.encode())
        with lock:
            obj = buckets.get(bucket, {}).get(key)
        if obj is None:
            return self._send(404, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>')
        data, ctype = obj
        return self._send(200, data, ctype, {"ETag": '"0"', "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT"})

    do_HEAD = do_GET

    def do_PUT(self):
        bucket, key = self._parts()
        data = self._body()
        with lock:
            if not key:
                buckets.setdefault(bucket, {})
            else:
                buckets.setdefault(bucket, {})[key] = (data, self.headers.get("Content-Type") or "application/octet-stream")
        return self._send(200, b"", extra={"ETag": '"0"'})

    def log_message(self, *args):
        pass


ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
