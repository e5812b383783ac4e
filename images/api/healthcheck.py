"""Container HEALTHCHECK for the shared api/worker image (standard library only).

The image runs in two roles: the gunicorn backend (default CMD) and the Celery worker
(command overridden to `celery --app image_api.worker.app worker`). PID 1's command line
tells which role this container plays:

- backend: GET http://127.0.0.1:$PORT/health must answer 200 (liveness only; it does not
  touch S3 or the broker, per the application's contract);
- worker: `celery inspect ping` addressed to this worker's node name must get a reply
  (it goes through the broker, so a lost broker connection also shows as unhealthy).

Nomad's service checks remain the checks that drive rollouts and restarts; this one only
makes `docker ps` / `docker inspect` truthful.
"""

import os
import socket
import subprocess
import sys
import urllib.request


def pid1_cmdline() -> list[str]:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except OSError:
        return []


def check_backend() -> int:
    port = os.environ.get("PORT", "8080")
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        print(f"backend health check failed: {exc}", file=sys.stderr)
        return 1


def check_worker() -> int:
    node = f"celery@{os.environ.get('HOSTNAME') or socket.gethostname()}"
    cmd = ["celery", "--app", "image_api.worker.app", "inspect", "ping", "--timeout", "5", "-d", node]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"worker health check failed: {exc}", file=sys.stderr)
        return 1
    if done.returncode != 0:
        sys.stderr.write(done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace"))
    return 0 if done.returncode == 0 else 1


def main() -> int:
    cmdline = " ".join(pid1_cmdline())
    if "celery" in cmdline and " worker" in cmdline:
        return check_worker()
    return check_backend()


if __name__ == "__main__":
    sys.exit(main())
