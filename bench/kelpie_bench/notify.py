"""Notifications scenario (`--only notify`, Kelpie only: PM2 has no notifications of its own):
the daemon's CPU per restart and its RssAnon with NOTIFY_APPS crash-looping apps, without
`[[notify]]` and with two targets (a webhook to a local HTTP server, a command), one daemon
after the other; then a burst of BURST exceptions of as many groups from one Node app (the
`process:exception` messages of the shim and `@pm2/io`), the daemon's RssAnon before and after
and the inbox's size. The notify section of RESULTS.md."""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import tempfile
import threading
import time
from pathlib import Path

from .common import FAKE_APP, log
from .managers import clean_up_on_exit, Kelpie, Manager
from .processes import daemon_cpu_ticks, loadavg, read_anon_mb
from .report import machine_info, merge_section
from .stats import round_floats

NOTIFY_APPS = 200
NOTIFY_LIFE_MS = 2000      # each app lives 2 s + 10 ms x its index, then exits 1
NOTIFY_SECONDS = 60.0      # each run, after the warm-up
NOTIFY_WARM_S = 15.0       # before the CPU count starts (the first crash loops' messages)
NOTIFY_BUDGET_PCT = 5.0    # issue 76: notifications on within 5 % of off
BURST = 10_000
NOTIFY_BEGIN = "<!-- bench:notify:begin -->"
NOTIFY_END = "<!-- bench:notify:end -->"
CLK_TCK = 100

BURST_JS = """
for (let i = 0; i < %d; i++) {
  process.send({type: 'process:exception', data: {name: 'Error', message: 'burst ' + i,
    stack: 'Error: burst ' + i + '\\n    at handler' + i + ' (/srv/burst.js:1:1)'}});
}
setInterval(() => {}, 1000);
""" % BURST


class Receiver:
    """A local HTTP server answering 200 to every POST, counting them."""

    def __init__(self) -> None:
        count = [0]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                count[0] += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.count = count
        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()


def crash_loop_apps() -> list[dict]:
    common = {"min_uptime": 100, "restart_delay": 0, "max_restarts": 10_000_000}
    return [{"name": f"loop{i}", "script": str(FAKE_APP), "interpreter": "none",
             "args": ["--quiet", "--print", "1", "--print-err", "1", "--exit-after",
                      str(NOTIFY_LIFE_MS + 10 * i), "--exit-code", "1"], **common}
            for i in range(NOTIFY_APPS)]


def restarts(m: Manager) -> int:
    return sum((a.get("pm2_env") or {}).get("restart_time", 0) for a in m.jlist())


def crash_loop_run(m: Manager, seconds: float) -> dict:
    """NOTIFY_APPS crash-looping apps for NOTIFY_WARM_S, then `seconds` counted: the daemon's
    CPU per restart and its RssAnon at the end."""
    dpid = m.start_daemon("notify")
    file = m.workdir / "loop.json"
    file.write_text(json.dumps({"apps": crash_loop_apps()}))
    m.run("start", str(file))
    time.sleep(NOTIFY_WARM_S)
    r0, t0 = restarts(m), daemon_cpu_ticks(dpid) or 0
    began = time.monotonic()
    time.sleep(seconds)
    r1, t1 = restarts(m), daemon_cpu_ticks(dpid) or 0
    anon = read_anon_mb(dpid)
    took = time.monotonic() - began
    m.run("delete", "all", timeout=120)
    counted = max(r1 - r0, 1)
    return {"restarts": counted, "seconds": took,
            "cpu_ms_per_restart": (t1 - t0) * 1000 / CLK_TCK / counted,
            "cpu_percent": (t1 - t0) / CLK_TCK / took * 100, "anon_mb": anon}


def burst_run(m: Manager) -> dict:
    """One Node app reporting BURST exceptions of as many groups at once."""
    dpid = m.daemon_pid()
    before = read_anon_mb(dpid)
    script = m.workdir / "burst.js"
    script.write_text(BURST_JS)
    m.run("start", str(script), "--name", "burst")
    began = time.monotonic()
    groups, seen = 0, 0
    while time.monotonic() - began < 60:
        time.sleep(2.0)
        out = m.run("errors", "--json", capture=True).stdout.decode(errors="replace")
        groups = len(json.loads(out or "[]"))
        seen = sum(g["count"] for g in json.loads(out or "[]"))
        if groups and time.monotonic() - began > 6:
            break
    after = read_anon_mb(dpid)
    inbox = m.home / "exceptions.json"
    m.run("delete", "all", timeout=120)
    return {"exceptions": BURST, "groups_kept": groups, "counted_in_kept_groups": seen,
            "anon_mb_before": before, "anon_mb_after": after,
            "inbox_file_kb": inbox.stat().st_size / 1024 if inbox.exists() else None}


def notify_main(cfg: argparse.Namespace, argv_str: str) -> int:
    started = dt.datetime.now(dt.timezone.utc)
    load = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="kelpie-bench-notify-"))
    seconds = 30.0 if cfg.quick else NOTIFY_SECONDS
    managers: list[Manager] = []
    cleanup = clean_up_on_exit(managers)
    receiver = Receiver()
    try:
        managers.append(Kelpie(tmp / "off"))
        off = crash_loop_run(managers[-1], seconds)
        managers[-1].cleanup()
        managers.append(Kelpie(tmp / "on"))
        (managers[-1].home / "kelpie.toml").write_text(
            f'[[notify]]\nwebhook = "{receiver.url}"\n'
            '[[notify]]\ncommand = "cat > /dev/null"\n')
        on = crash_loop_run(managers[-1], seconds)
        on["webhook_messages"] = receiver.count[0]
        burst = burst_run(managers[-1])
    finally:
        cleanup()
        receiver.close()
    ratio = on["cpu_ms_per_restart"] / off["cpu_ms_per_restart"]
    table = build_table(off, on, burst, ratio)
    print(table)
    if cfg.output:
        info = machine_info()
        run_line = (f"Command: `{argv_str}`; {started:%Y-%m-%d %H:%M} UTC; load average {load} "
                    f"at start; {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, "
                    f"Linux {info['kernel']}")
        section = f"""{NOTIFY_BEGIN}
## Notifications and the exception inbox

{run_line}

{table}

{NOTES}

<details><summary>Raw samples (notify)</summary>

```json
{json.dumps(round_floats({"off": off, "on": on, "burst": burst}), indent=1)}
```

</details>
{NOTIFY_END}"""
        text = cfg.output.read_text() if cfg.output.exists() else ""
        cfg.output.write_text(merge_section(text, NOTIFY_BEGIN, NOTIFY_END, section))
        log(f"updated the notify section of {cfg.output}")
    return 0 if ratio <= 1 + NOTIFY_BUDGET_PCT / 100 else 1


def build_table(off: dict, on: dict, burst: dict, ratio: float) -> str:
    verdict = "ok" if ratio <= 1 + NOTIFY_BUDGET_PCT / 100 else "over"
    rows = [
        "| | Restarts counted | Daemon CPU per restart | Daemon CPU | Daemon RssAnon at the end |",
        "|---|---:|---:|---:|---:|",
        f"| `[[notify]]` off | {off['restarts']} | {off['cpu_ms_per_restart']:.3f} ms "
        f"| {off['cpu_percent']:.1f} % | {off['anon_mb']:.1f} MB |",
        f"| on: a webhook and a command ({on['webhook_messages']} webhook messages) "
        f"| {on['restarts']} | {on['cpu_ms_per_restart']:.3f} ms | {on['cpu_percent']:.1f} % "
        f"| {on['anon_mb']:.1f} MB |",
        f"| on / off | | **{ratio:.3f}x** (≤ {1 + NOTIFY_BUDGET_PCT / 100:.2f}: {verdict}) | "
        f"| {on['anon_mb'] / off['anon_mb']:.3f}x |",
        "",
        "| Burst | Exceptions | Groups kept | RssAnon before → after | exceptions.json |",
        "|---|---:|---:|---:|---:|",
        f"| one Node app, {BURST} distinct groups at once | {burst['exceptions']} "
        f"| {burst['groups_kept']} | {burst['anon_mb_before']:.1f} → "
        f"{burst['anon_mb_after']:.1f} MB | {burst['inbox_file_kb']:.0f} KB |",
    ]
    return "\n".join(rows)


NOTES = (
    f"{NOTIFY_APPS} apps (fake-app printing a line to stdout and one to stderr, exiting 1 after "
    f"{NOTIFY_LIFE_MS / 1000:g} s + 10 ms x its index, restarted at once), in a daemon without "
    "`[[notify]]`, then in one with two targets: a webhook to a local HTTP server and a command "
    "(`cat > /dev/null`), every event, the default rate limit (10 messages a minute each). The "
    f"first {NOTIFY_WARM_S:g} s are not counted (every app's first crashes and its crash loop's "
    "message); then the daemon's utime + stime from /proc over the restarts counted in "
    "`jlist`. Every exit goes through the incidents (its stderr tail read for a trace, the crash "
    "loops counted) whether targets exist or not: the inbox takes exceptions either way, so "
    "'off' measures no targets, not no work. The burst: one Node app sends "
    f"{BURST} `process:exception` messages with distinct stacks as fast as its IPC channel takes "
    "them; the inbox keeps 200 groups (the ones seen last), so memory stays flat.")
