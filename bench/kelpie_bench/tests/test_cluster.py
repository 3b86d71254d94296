"""Self-test of the cluster scenario's helpers: wrk's report, the summary and table, the merge
of the cluster section into an existing report, the hello app."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from ..cluster_apps import CLUSTER_APP_JS, CLUSTER_MODES, WRK_CONNECTIONS, WRK_THREADS
from ..cluster_graceful import summarize_cluster
from ..cluster_instances import http_ok
from ..cluster_report import (
    build_cluster_table, cluster_section, existing_cluster_section, merge_cluster_section,
)
from ..processes import free_port
from ..report import README_LINE
from ..wrk import ensure_wrk, parse_ss_requests, parse_wrk, wrk_argv


WRK_SAMPLE_ERRORS = """Running 1s test @ http://127.0.0.1:48931/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   283.20us  660.99us   7.42ms   92.33%
    Req/Sec     4.02k     1.09k    5.80k    50.00%
  Latency Distribution
     50%  100.00us
     75%  118.00us
     90%  358.00us
     99%    3.52ms
  4012 requests in 1.00s, 231.16KB read
  Socket errors: connect 0, read 2110, write 1904, timeout 0
  Non-2xx or 3xx responses: 4012
Requests/sec:   3999.18
Transfer/sec:    230.42KB
"""

WRK_SAMPLE_CLEAN = """Running 1m test @ http://127.0.0.1:3000/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.21s   305.12ms   1.99s    70.00%
    Req/Sec    12.01k     1.10k   14.00k    68.00%
  1441200 requests in 1.00m, 180.00MB read
Requests/sec:  24020.00
Transfer/sec:      3.00MB
"""


class ClusterTest(unittest.TestCase):
    def test_parse_wrk_errors_and_latency(self):
        w = parse_wrk(WRK_SAMPLE_ERRORS)
        self.assertEqual((w["requests"], w["connect"], w["read"], w["write"], w["timeout"],
                          w["non2xx"]), (4012, 0, 2110, 1904, 0, 4012))
        self.assertEqual(w["failed"], 2110 + 1904 + 4012)
        self.assertAlmostEqual(w["duration_s"], 1.0)
        self.assertAlmostEqual(w["rps"], 3999.18)
        self.assertAlmostEqual(w["latency_avg_ms"], 0.2832)
        self.assertAlmostEqual(w["latency_p50_ms"], 0.1)
        self.assertAlmostEqual(w["latency_p90_ms"], 0.358)
        self.assertAlmostEqual(w["latency_p99_ms"], 3.52)

    def test_parse_wrk_clean_minutes_seconds(self):
        w = parse_wrk(WRK_SAMPLE_CLEAN)
        self.assertEqual((w["requests"], w["failed"], w["non2xx"], w["read"]), (1441200, 0, 0, 0))
        self.assertAlmostEqual(w["duration_s"], 60.0)
        self.assertAlmostEqual(w["rps"], 24020.0)
        self.assertAlmostEqual(w["latency_avg_ms"], 1210.0)
        self.assertIsNone(w["latency_p99_ms"])  # run without --latency
        # No Requests/sec line: computed from the count and the duration.
        w = parse_wrk(WRK_SAMPLE_CLEAN.replace("Requests/sec:  24020.00\n", ""))
        self.assertAlmostEqual(w["rps"], 24020.0)

    def test_parse_wrk_not_a_report(self):
        with self.assertRaises(ValueError):
            parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")

    def test_ensure_wrk_without_root_or_apt(self):
        """No wrk: the reason is given, nothing is installed (which/geteuid stubbed)."""
        which, geteuid = shutil.which, os.geteuid
        try:
            shutil.which = lambda name: None
            self.assertEqual(ensure_wrk()[0], None)
            self.assertIn("no apt-get", ensure_wrk()[1])
            shutil.which = lambda name: "/usr/bin/apt-get" if name == "apt-get" else None
            os.geteuid = lambda: 1000
            wrk, why = ensure_wrk()
            self.assertIsNone(wrk)
            self.assertIn("sudo apt-get install -y wrk", why)
            shutil.which = lambda name: "/opt/bin/wrk" if name == "wrk" else None
            self.assertEqual(ensure_wrk(), ("/opt/bin/wrk", ""))
        finally:
            shutil.which, os.geteuid = which, geteuid

    def test_parse_ss_requests(self):
        out = ('0 0 [::ffff:127.0.0.1]:8000 [::ffff:127.0.0.1]:44766 users:(("node",pid=91,fd=27))\n'
               '\t bbr wscale:10,10 data_segs_out:4629 data_segs_in:4630 bbr:(bw:1bps)\n'
               '0 0 [::ffff:127.0.0.1]:8000 [::ffff:127.0.0.1]:44768 users:(("node",pid=92,fd=26))\n'
               '\t cubic data_segs_in:10\n'
               '0 0 [::ffff:127.0.0.1]:8000 [::ffff:127.0.0.1]:44770 users:(("node",pid=91,fd=28))\n'
               '\t cubic segs_in:3 data_segs_in:5\n')
        self.assertEqual(parse_ss_requests(out), {91: 4635, 92: 10})

    def test_wrk_argv(self):
        close = dict((k, e) for k, _t, e in CLUSTER_MODES)["close"]
        a = wrk_argv("wrk", 3000, 4, close)
        self.assertEqual(a, ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", "-d4s",
                             "--latency", "-H", "Connection: close", "http://127.0.0.1:3000/"])
        self.assertNotIn("-H", wrk_argv("wrk", 3000, 4, ()))

    @staticmethod
    def raw(rps: dict[str, list[float]], cpu: float, reload_failed: dict[str, list[dict]]) -> dict:
        def run(r: float) -> dict:
            w = parse_wrk(WRK_SAMPLE_CLEAN)
            w.update(rps=r, requests=int(r * 4), latency_p50_ms=1.0, latency_p99_ms=9.0,
                     daemon_cpu_s=cpu, daemon_cpu_pct=cpu / 4 * 100,
                     daemon_cpu_us_per_req=cpu / (r * 4) * 1e6, output="...",
                     instance_cpu_pct=[40.0, 90.0], server_cpu_us_per_req=100.0 + cpu * 100,
                     wrk_cpu_s=3.0, bench_cpu_pct_of_machine=95.0)
            return w

        def rel(errs: dict) -> dict:
            w = run(1000.0)
            w.update(errs, reload_s=2.0, reload_exit=0, reload_within_run=True, replaced=True)
            w["failed"] = sum(errs.values())
            return w
        balance = [{"rps": 30000.0, "failed": 0, "requests_per_instance": [c, 100],
                    "ratio": c / 100} for c in (110, 125, 105)]
        return {"runs": {k: [run(x) for x in v] for k, v in rps.items()},
                "reloads": {k: [rel(e) for e in v] for k, v in reload_failed.items()},
                "balance": balance}

    def test_summary_and_table(self):
        zero = {"read": 0}
        pm2 = summarize_cluster(self.raw(
            {"close": [2000.0, 2500.0, 2400.0], "keepalive": [20000.0, 21000.0, 19000.0]}, 1.0,
            {"close": [{"read": 26}, {"read": 30, "connect": 2}, {"read": 10}],
             "keepalive": [zero, zero, {"read": 64}]}))
        kel = summarize_cluster(self.raw(
            {"close": [8000.0, 8400.0, 9000.0], "keepalive": [23000.0, 25000.0, 24000.0]}, 0.0,
            {"close": [zero] * 3, "keepalive": [zero] * 3}))
        self.assertEqual(pm2["rps_close"], 2400.0)
        self.assertEqual(kel["rps_close"], 8400.0)
        self.assertEqual(pm2["reload_failed_close"], 26)
        self.assertEqual(pm2["reload_failed_close_max"], 32)
        self.assertEqual(pm2["reload_failed_close_worst"]["connect"], 2)
        self.assertEqual((kel["reloads"], kel["reloads_replaced"], kel["reloads_ok"]), (6, 6, 6))
        # wrk's output is kept in the raw samples only for runs with failed requests.
        self.assertNotIn("output", kel["raw"]["runs"]["close"][0])
        self.assertIn("output", pm2["raw"]["reloads"]["close"][0])
        table = build_cluster_table(pm2, kel)
        self.assertEqual(table.count("\n"), 1 + 2 + 1 + 2 + 2 + 2 + 2 + 2 + 1 + 2 + 2 + 2 + 2)
        kel["graceful"] = {"seed": {"rounds": [{"failed": [0, 0], "replaced": True,
                                                "reload_exit": 0}], "failed_max": 0,
                                    "replaced": 1},
                           "express": {"skipped": "npm not found"}}
        pm2["graceful"] = {"seed": {"rounds": [{"failed": [1, 40], "replaced": True,
                                                "reload_exit": 0}], "failed_max": 41,
                                    "replaced": 1}}
        kel["bound"] = {"rps_close": 10500.0, "rps_keepalive": 24000.0}
        table = build_cluster_table(pm2, kel)
        self.assertIn("| 41 (1 + 40), 1 of 1 replaced | 0 (0 + 0), 1 of 1 replaced | - | Kelpie 0 "
                      "(met) |", table)
        self.assertIn("| n/a | skipped (npm not found) | - | Kelpie 0 |", table)
        self.assertIn("| - | 10,500 req/s | Kelpie at 80% | - |", table)
        self.assertEqual((kel["balance_ratio"], kel["balance_ratio_max"]), (1.1, 1.25))
        self.assertIn("| 1.10x (worst round 1.25x, of 3) | 1.10x (worst round 1.25x, of 3) | - | "
                      "Kelpie <= 1.3x (met) |", table)
        self.assertIn("| 95 % | 95 % | - | - (the rest went to other work) |", table)
        self.assertIn("| 200.0 µs | 100.0 µs | 2.0x | - |", table)
        self.assertEqual(kel["instance_cpu_pct_close"], [90.0, 40.0])
        self.assertIn("| 90% + 40% of a core | 90% + 40% of a core | - | - |", table)
        self.assertIn("| 2,400 req/s | 8,400 req/s | 3.50x (Kelpie / PM2) | Kelpie >= 3x PM2's "
                      "(met) |", table)
        self.assertIn("1.20x (Kelpie / PM2) | Kelpie >= 1.2x PM2's (met) |", table)
        self.assertIn("| 26 (worst 32): connect 2, read 30 | 0 (worst 0) | - | Kelpie 0 (met) |",
                      table)
        self.assertIn("| 0 (worst 64): read 64 |", table)
        self.assertIn("0.00 s, 0.0% of a core, 0.0 µs/req | - | Kelpie ~0: <= 1% of a core (met)",
                      table)
        self.assertIn("| 6 of 6 | 6 of 6 | - | all (met) |", table)
        kel["rps_keepalive"] = 22000.0
        self.assertIn("Kelpie >= 1.2x PM2's (missed)", build_cluster_table(pm2, kel))
        kel["raw"]["reloads"]["close"][1].update(reload_exit=1, replaced=False)
        bad = summarize_cluster(kel["raw"])
        self.assertIn("| 5 of 6 (1 exited non-zero) | - | all (missed) |",
                      build_cluster_table(None, bad))
        self.assertIn("| n/a |", build_cluster_table(None, kel))  # --kelpie-only

    def test_merge_cluster_section(self):
        head = "# Kelpie vs PM2: benchmark results\n\n| core |\n\n## Logs\n\n| logs |\n\n"
        tail = README_LINE + "\n\n<details>raw</details>\n"
        sec1 = cluster_section("| t1 |", "notes 1", "Command: one", {"kelpie": {"a": 1.23456}})
        sec2 = cluster_section("| t2 |", "notes 2", "Command: two", {"kelpie": {"a": 2}})
        one = merge_cluster_section(head + tail, sec1)
        self.assertEqual(one, head + sec1 + "\n\n" + tail)
        self.assertIn('"a": 1.235', one)
        two = merge_cluster_section(one, sec2)
        self.assertEqual(two, head + sec2 + "\n\n" + tail)
        self.assertEqual(merge_cluster_section(two, None), head + tail)
        self.assertEqual(merge_cluster_section("# r\n", sec1), "# r\n\n" + sec1 + "\n")
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        try:
            (d / "r.md").write_text(two)
            self.assertEqual(existing_cluster_section(d / "r.md"), sec2)
            self.assertIsNone(existing_cluster_section(d / "missing.md"))
            self.assertIsNone(existing_cluster_section(None))
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_hello_app_serves(self):
        """The cluster app answers 200 on PORT with no manager (skipped without node)."""
        if not shutil.which("node"):
            self.skipTest("node not found")
        d = Path(tempfile.mkdtemp(prefix="kelpie-bench-selftest-"))
        port = free_port()
        (d / "hello.js").write_text(CLUSTER_APP_JS)
        p = subprocess.Popen(["node", str(d / "hello.js")], env={**os.environ, "PORT": str(port)},
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not http_ok(port) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(http_ok(port))
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(d, ignore_errors=True)
        self.assertFalse(http_ok(port))
