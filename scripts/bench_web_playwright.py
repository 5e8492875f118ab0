"""Playwright baseline for `trajforge-bench web`: the same pages, the same Chromium binary.

Usage: bench_web_playwright.py URLS_FILE REPEATS EXECUTABLE CLICK_START CLICK_NAMES_FILE

For every URL (one per line): load it, then time `aria_snapshot()` of the page body REPEATS
times (median kept). Then, from CLICK_START, click each link named in CLICK_NAMES_FILE (one
accessible name per line) and take the snapshot: the action-to-observation latency.
Prints one JSON object on stdout.
"""

import json
import statistics
import sys
import time

from playwright.sync_api import sync_playwright


def main():
    urls = [u for u in open(sys.argv[1]).read().splitlines() if u]
    repeats = int(sys.argv[2])
    executable = sys.argv[3]
    click_start = sys.argv[4]
    names = [n for n in open(sys.argv[5]).read().splitlines() if n]
    out = {"pages": [], "clicks_ms": []}
    with sync_playwright() as p:
        t = time.perf_counter()
        browser = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        page = browser.new_page()
        out["launch_ms"] = (time.perf_counter() - t) * 1000
        for url in urls:
            t = time.perf_counter()
            page.goto(url, wait_until="load")
            goto_ms = (time.perf_counter() - t) * 1000
            times = []
            chars = 0
            for _ in range(repeats):
                t = time.perf_counter()
                snap = page.locator("body").aria_snapshot()
                times.append((time.perf_counter() - t) * 1000)
                chars = len(snap)
            out["pages"].append(
                {"url": url, "goto_ms": goto_ms, "snapshot_ms": statistics.median(times), "chars": chars}
            )
        for name in names:
            page.goto(click_start, wait_until="load")
            t = time.perf_counter()
            page.get_by_role("link", name=name, exact=True).first.click()
            page.wait_for_load_state("load")
            page.locator("body").aria_snapshot()
            out["clicks_ms"].append((time.perf_counter() - t) * 1000)
        browser.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
