"""Browser benchmark: requests/s from a headless Chromium page, wyre.js vs a bare WebSocket.

Usage: ``python bench/browser.py URL [--warmup S] [--duration S] [--rounds N] [--slices N]``

One page (its origin a small wyre server of this process, which also serves
``/wyre.js``) runs two clients against the echo server at URL: ``wyre.js``
(``conn.request``) and the browser's own ``WebSocket`` with a hand-written
client that adds the key and direction and matches replies to promises by
key. Both connect, warm up, then take turns in short slices (A B B A ...),
``--duration`` seconds each in all, ``--rounds`` times. PIPE: 100 workers each awaiting one request
after another; SEQ: one. Every reply must echo its worker's ``n``. Prints one
JSON line per client and workload (``rate``: the median of the rounds) and exits
1 on a mismatch, 3 when Playwright or Chromium is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys

from common import EXIT_UNAVAILABLE, QUESTION, UNAVAILABLE, announce

CLIENTS = ["wyre.js", "bare"]
WORKLOADS = {"PIPE": 100, "SEQ": 1}
FLAGS = ["--no-sandbox", "--disable-features=LocalNetworkAccessChecks"]

# Runs in the page: both clients connected at once, then taking turns (A B B A
# A B ...) in ``slices`` slices each, so that a change in the machine's load
# touches both alike. Returns each client's rate and the wrong replies.
PAGE = """
async ([url, concurrency, warmup, duration, slices, question]) => {
  const { Client } = await import("/wyre.js");
  const conn = await new Client().connect(url);
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const pending = new Map();
  ws.onmessage = (event) => {
    const reply = JSON.parse(event.data);
    const waiter = pending.get(reply.key);
    if (waiter !== undefined) { pending.delete(reply.key); waiter(reply); }
  };
  const clients = {
    "wyre.js": async (message) => (await conn.request(message)).message,
    bare: (message) => new Promise((resolve) => {
      const key = crypto.randomUUID();
      pending.set(key, resolve);
      ws.send(JSON.stringify({ ...message, key, direction: "REQUEST" }));
    }),
  };
  let mismatches = 0;
  const run = async (name, seconds) => {
    const request = clients[name];
    let completed = 0, running = true;
    const worker = async (n) => {
      while (running) {
        const reply = await request({ question, n, type: "echo" });
        if (reply.n === n && reply.question === question) completed++; else mismatches++;
        n += concurrency;
      }
    };
    const start = performance.now();
    const workers = Array.from({ length: concurrency }, (_, i) => worker(i));
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    running = false;
    await Promise.all(workers);
    return [completed, (performance.now() - start) / 1000];
  };
  await run("wyre.js", warmup);
  await run("bare", warmup);
  const totals = { "wyre.js": [0, 0], bare: [0, 0] };
  const order = [];
  for (let i = 0; i < slices; i++) {
    order.push(...(i % 2 ? ["bare", "wyre.js"] : ["wyre.js", "bare"]));
  }
  for (const name of order) {
    const [count, elapsed] = await run(name, duration / slices);
    totals[name][0] += count;
    totals[name][1] += elapsed;
  }
  await conn.close();
  ws.close();
  const rates = {};
  for (const [name, [count, elapsed]] of Object.entries(totals)) rates[name] = count / elapsed;
  return { rates, mismatches };
}
"""


async def main_async(args: argparse.Namespace) -> int:
    from playwright.async_api import async_playwright

    import wyre

    executable = os.environ.get("WYRE_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        raise ImportError("no chromium (apt-get install chromium)")
    origin = wyre.Server(client_script="/wyre.js")  # the page's origin; it serves the module
    await origin.listen(port=0, host="127.0.0.1")
    rates: dict[tuple[str, str], list[float]] = {}
    mismatches = 0
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=executable, args=FLAGS)
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{origin.port}/wyre.js")
            for _ in range(args.rounds):
                for workload, concurrency in WORKLOADS.items():
                    result = await page.evaluate(
                        PAGE,
                        [args.url, concurrency, args.warmup, args.duration, args.slices, QUESTION],
                    )
                    for client in CLIENTS:
                        rates.setdefault((client, workload), []).append(result["rates"][client])
                    mismatches += result["mismatches"]
            await browser.close()
    finally:
        await origin.close()
    for (client, workload), values in rates.items():
        announce(
            json.dumps(
                {
                    "client": client,
                    "workload": workload,
                    "rate": statistics.median(values),
                    "rates": values,
                    "mismatches": mismatches,
                }
            )
        )
    return 1 if mismatches else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--slices", type=int, default=10, help="turns per client per round")
    args = parser.parse_args()
    try:
        return asyncio.run(main_async(args))
    except ImportError as exc:
        announce(UNAVAILABLE, f"{type(exc).__name__}: {exc}")
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
