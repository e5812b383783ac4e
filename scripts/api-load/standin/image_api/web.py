"""Stand-in for the api's HTTP surface, for the load test only (NOT the application).

The real api (sandhose/projet-cloud-virt, api/image_api/web.py) cannot be fetched in CI.
This module reproduces what matters under load, with the same framework (Flask, Debian's
python3-flask) and the same module path (image_api.web:app), so gunicorn runs it with the
exact command line of the api job:
- POST /image: Flask parses the multipart field `file` (werkzeug reads the request body,
  a slow client holds the serving thread for as long as it sends), then the stream is read
  to the end as upload_fileobj does, stored in memory under a random 8-character id;
  201 with the id. 400 without a file.
- GET /image/<id>: the stored bytes (404 when absent).
- GET /health: "ok", touching nothing (as upstream: liveness only).
"""
import random
import string
import threading

from flask import Flask, request

app = Flask(__name__)
_store = {}
_lock = threading.Lock()


def _random_id():
    return "".join(random.choices(string.ascii_letters + string.digits, k=8))


@app.route("/image", methods=["POST"])
def upload():
    if "file" not in request.files:
        return {"error": "missing file"}, 400
    data = request.files["file"].stream.read()
    key = _random_id()
    with _lock:
        _store[key] = data[:1024]  # keep memory flat over a long run
    return {"id": key, "original": f"/image/{key}"}, 201


@app.route("/image/<key>", methods=["GET"])
def original(key):
    with _lock:
        data = _store.get(key)
    if data is None:
        return "not found", 404
    return data


@app.route("/health", methods=["GET"])
def health():
    return "ok"
