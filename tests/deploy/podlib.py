"""What the container tests share (issue 30): podman with deploy/images.sh's containers.conf, and the
image built by deploy/images.sh (cached bases; a second build takes a second)."""
import os, subprocess, sys, time

from dx import ENV, check, finish

SRC = ENV.get("DXSYNC_SOURCE") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = ENV.get("DXSYNC_CACHE") or os.path.expanduser("~/.cache/dxsync")
ENV["CONTAINERS_CONF"] = os.path.join(CACHE, "containers", "containers.conf")
TAG = "localhost/dxsync:test"


def podman(*args, check_rc=True, timeout=180):
    r = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}: exit {r.returncode}: {r.stderr.strip()[:500]}")
    return r


def build_image(name):
    """deploy/images.sh TAG, checked; ends the test NAME when it fails. Returns the image's size."""
    t0 = time.time()
    r = subprocess.run([os.path.join(SRC, "deploy", "images.sh"), TAG], capture_output=True, text=True,
                       timeout=1800)
    sys.stderr.write(r.stderr[-2000:])
    if not check(r.returncode == 0, f"deploy/images.sh builds the image ({time.time() - t0:.0f} s)"):
        finish(name)
    return int(r.stdout.split()[-1])
