#!/usr/bin/env python3
"""Check a taskgate timeline page in a real headless Chromium.

usage: check_timeline.py PAGE.html EXPECTED_BARS [--screenshot OUT.png] [--timeout 60]

Passes (exit 0) only when the page's own script reports exactly EXPECTED_BARS
bars with a non-empty box (body data-rendered) and a screenshot of it looks
like a drawn page. Exit 1: the page failed a check. Exit 2: the check itself
could not run (no Chromium, bad arguments, Chromium crashed or hung).

Python 3 standard library only, so it runs on a bare CI image.
"""

import argparse
import html.parser
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from urllib.request import pathname2url

INSTALL_HINT = (
    "install it with: apt-get update && apt-get install -y chromium   (Debian/Ubuntu package 'chromium'),\n"
    "or point CHROMIUM=/path/to/chrome at any Chromium/Chrome binary"
)
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WINDOW = (1400, 900)
# A blank 1400x900 page is ~5.7 KB as PNG in Debian 12's Chromium 156, a timeline
# with no tasks (header and empty lanes) ~32 KB: 12 KB separates them with margin.
DEFAULT_MIN_PNG = 12_000
# Noise Chromium prints on a machine without D-Bus or a GPU; hidden from error output.
NOISE = ("dbus/", "unexpected operator", "Fontconfig", "gpu_init", "viz_main", "bytes written to file",
         "angle", "gl_surface", "command_buffer")


class BodyAttrs(html.parser.HTMLParser):
    """Grabs the <body> attributes; a regex would also match text inside the page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.body = None

    def handle_starttag(self, tag, attrs):
        if tag == "body" and self.body is None:
            self.body = dict(attrs)


def fail(code, msg):
    print(f"check_timeline: FAIL: {msg}", file=sys.stderr)
    sys.exit(code)


def find_chromium():
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        path = shutil.which(explicit)
        if not path:
            fail(2, f"CHROMIUM={explicit!r} is not an executable\n{INSTALL_HINT}")
        return path
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    fail(2, f"no Chromium found on PATH (tried {', '.join(CANDIDATES)})\n{INSTALL_HINT}")


def base_flags(profile):
    # --no-sandbox: Chromium refuses to start as root otherwise (and containers
    #   rarely allow its namespaces anyway).
    # --headless: on Chromium >= 112 this is the "new" headless, i.e. the real
    #   browser; older ones fall back to the legacy mode, which also has
    #   --dump-dom and --screenshot.
    # --user-data-dir: a throwaway profile, so a running browser or a stale
    #   profile lock cannot turn this into "opened in existing session".
    # --disable-dev-shm-usage: small /dev/shm in containers crashes renderers.
    # --virtual-time-budget: lets the page's load handlers and any timers finish
    #   before the dump; virtual time is fast-forwarded, so it costs no real wait.
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}",
            "--virtual-time-budget=5000"]


def run(cmd, timeout):
    """Runs Chromium in its own process group so a hang can be ended with all its children."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        fail(2, f"Chromium did not finish within {timeout} s: {' '.join(cmd)}")
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), time.monotonic() - started


def useful_stderr(err, limit=15):
    lines = [l for l in err.splitlines() if l.strip() and not any(n in l for n in NOISE)]
    return "\n".join("    " + l for l in lines[-limit:]) or "    (nothing beyond the usual D-Bus/GPU noise)"


def check_png(path, min_bytes):
    if not os.path.exists(path):
        return f"no screenshot was written to {path}"
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(33)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    if (width, height) != WINDOW:
        return f"screenshot is {width}x{height}, expected {WINDOW[0]}x{WINDOW[1]}"
    if size <= min_bytes:
        return f"screenshot is only {size} bytes (<= {min_bytes}): the page looks blank"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", help="timeline HTML file")
    ap.add_argument("expected", type=int, help="number of task bars that must render")
    ap.add_argument("--screenshot", help="where to write the PNG (default: next to the page, .png)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per Chromium run (default 60)")
    ap.add_argument("--min-png-bytes", type=int, default=DEFAULT_MIN_PNG)
    ap.add_argument("--lanes", type=int, help="also require this many lanes")
    args = ap.parse_args()

    page = os.path.abspath(args.page)
    if not os.path.isfile(page):
        fail(2, f"no such file: {page}")
    shot = os.path.abspath(args.screenshot or os.path.splitext(page)[0] + ".png")
    chromium = find_chromium()
    url = "file://" + pathname2url(page)  # percent-encodes spaces and non-ASCII

    profile = tempfile.mkdtemp(prefix="check-timeline-")
    try:
        code, dom, err, took = run([chromium, *base_flags(profile), "--dump-dom", url], args.timeout)
        if code != 0 or not dom.strip():
            fail(2, f"Chromium exited {code} without a DOM after {took:.1f} s; stderr:\n{useful_stderr(err)}")
        print(f"dump-dom: {took:.1f} s, {len(dom)} chars")

        parser = BodyAttrs()
        parser.feed(dom)
        body = parser.body
        if body is None:
            fail(1, "the dumped DOM has no <body>")
        rendered = body.get("data-rendered")
        if rendered is None:
            fail(1, "<body> has no data-rendered: the page's script did not run (or threw)\n"
                    f"  body attributes: {body}\n  stderr:\n{useful_stderr(err)}")
        if not rendered.isdigit():
            fail(1, f"data-rendered is {rendered!r}, not a count")
        lanes = body.get("data-lanes")

        # Remove a stale screenshot so an old file cannot make this pass.
        if os.path.exists(shot):
            os.remove(shot)
        code, _, err, took = run([chromium, *base_flags(profile), f"--screenshot={shot}",
                                  f"--window-size={WINDOW[0]},{WINDOW[1]}", url], args.timeout)
        print(f"screenshot: {took:.1f} s -> {shot}" + (f" ({os.path.getsize(shot)} bytes)" if os.path.exists(shot) else ""))
        if code != 0:
            fail(2, f"Chromium exited {code} taking the screenshot; stderr:\n{useful_stderr(err)}")
    finally:
        # A killed Chromium may still be writing to its profile; leftovers are harmless.
        shutil.rmtree(profile, ignore_errors=True)

    problems = []
    if int(rendered) != args.expected:
        problems.append(f"{rendered} bars rendered, expected {args.expected}")
    if args.lanes is not None and lanes != str(args.lanes):
        problems.append(f"{lanes} lanes drawn, expected {args.lanes}")
    png_problem = check_png(shot, args.min_png_bytes)
    if png_problem:
        problems.append(png_problem)
    if problems:
        fail(1, "; ".join(problems))
    print(f"check_timeline: OK: {rendered} bars rendered, {lanes} lanes, screenshot {os.path.getsize(shot)} bytes")


if __name__ == "__main__":
    main()
