"""Self-test of the deploy scenario's helpers: the HTTP answer and host state parsing, the
switch watch, the lab's ports, sshd config and ecosystem file (evaluated by node), the
summary, the tables and the section merge."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

from ..deploy import parse_host_state, parse_http_body, SwitchWatch
from ..deploy_lab import (
    count_logins, DEPLOY_USERS, ecosystem_js, KELPIE_PATH, LOW_PORTS, low_free_ports, PM2_PATH, sshd_config,
)
from ..deploy_report import (
    build_deploy_table, build_rounds_table, compact_json, DEPLOY_BEGIN, DEPLOY_END, deploy_section,
    existing_deploy_section, failure_cell, merge_deploy_section, raw_samples, summarize_deploy,
)
from ..report import README_LINE

U1, U2 = DEPLOY_USERS


def state(current: str, last: str, failed: int | None = 0) -> dict:
    return {"current": current, "last_deploy": last, "failed_releases": failed}


def loaded(rc: int, wall: float, ref: str, f1: int, f2: int, n: int, seen=(1.0, 2.0)) -> dict:
    return {"rc": rc, "wall_s": wall, "ref": ref,
            "load": {U1: {"failed": f1, "read": f1, "requests": n, "latency_avg_ms": 1.0},
                     U2: {"failed": f2, "read": f2 - min(f2, 1), "non2xx": min(f2, 1),
                          "requests": n}},
            "watch": {"first_new_s": {U1: seen[0], U2: seen[1]}}, "ssh_logins": {U1: 8, U2: 8}}


PM2_ROUND_1 = loaded(0, 13.3, "v2", 11, 10, 500_000, (7.1, 12.4))
PM2_ROUND_1["watch"].update(new_connection_failed={U1: 0, U2: 2},
                            new_connection_failures={"reset": 2})
PM2 = {"setup": {"wall_s": 2.1}, "first": {"wall_s": 4.5},
       "rounds": [PM2_ROUND_1,
                  loaded(0, 11.0, "v1", 3, 0, 400_000), loaded(0, 12.0, "v2", 0, 1, 100_000)],
       "fail": {"rc": 1, "wall_s": 2.7, "ref": "v1",
                "before": {U1: state("v2", "v2", 0), U2: state("v2", "v2", 0)},
                "after": {U1: state("v1", "v1", 0), U2: state("v2", "v2", 0)},
                "served_after": {U1: "v2", U2: "v2"},
                "load": {U1: {"failed": 0}, U2: {"failed": 0}},
                "watch": {"first_new_s": {U1: None, U2: None}}}}
KELPIE = {"setup": {"wall_s": 0.45}, "first": {"wall_s": 0.63},
          "rounds": [loaded(0, 1.96, "v2", 0, 0, 120_000), loaded(0, 1.5, "v1", 0, 0, 100_000),
                     loaded(0, 1.7, "v2", 0, 0, 100_000)],
          "fail": {"rc": 1, "wall_s": 1.25, "ref": "v1",
                   "before": {U1: state("v2", "v2", 0), U2: state("v2", "v2", 0)},
                   "after": {U1: state("v2", "v2", 1), U2: state("v2", "v2", 1)},
                   "served_after": {U1: "v2", U2: "v2"}, "load": {}}}


class DeployTest(unittest.TestCase):
    def test_http_bodies(self):
        self.assertEqual(parse_http_body(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nv2\n"),
                         "v2")
        chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nv1\n\r\n"
                   b"0\r\n\r\n")
        self.assertEqual(parse_http_body(chunked), "v1")
        self.assertEqual(parse_http_body(b"HTTP/1.0 200 OK\r\n\r\nv1"), "v1")
        self.assertEqual(parse_http_body(b"HTTP/1.1 502 Bad Gateway\r\n\r\nx"), "non-200")
        self.assertEqual(parse_http_body(b"garbage"), "non-200")
        self.assertEqual(parse_http_body(b""), "empty")
        self.assertEqual(parse_http_body(b"HTTP/1.1 200 OK\r\n\r\n"), "empty")

    def test_host_state(self):
        tags = {"aaaa": "v1", "bbbb": "v2"}.get
        self.assertEqual(parse_host_state("current=v2\nlast=bbbb\nfailed=1\n",
                                          lambda s: tags(s, s[:7] or "-")),
                         state("v2", "v2", 1))
        self.assertEqual(parse_host_state("current=\nlast=\nfailed=0\n", lambda s: s or "-"),
                         state("-", "-", 0))
        self.assertEqual(parse_host_state("", lambda s: s or "-"), state("-", "-", None))

    def test_the_switch_watch_sees_when_each_host_answers_the_new_version(self):
        answer = {"body": b"v1\n"}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the handler's name
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer["body"])))
                self.end_headers()
                self.wfile.write(answer["body"])

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        dead = low_free_ports(1)[0]  # nothing listens there
        try:
            watch = SwitchWatch({U1: server.server_address[1], U2: dead}, "v2")
            watch.start()
            time.sleep(0.35)
            answer["body"] = b"v2\n"
            time.sleep(0.35)
            res = watch.stop()
        finally:
            server.shutdown()
            server.server_close()
        self.assertGreater(res["first_new_s"][U1], 0.25)
        self.assertLess(res["first_new_s"][U1], 0.7)
        self.assertIsNone(res["first_new_s"][U2])
        self.assertEqual(res["new_connection_failed"][U1], 0)
        self.assertEqual(res["new_connection_failed"][U2], res["asked"])
        self.assertEqual(res["new_connection_failures"], {"refused": res["asked"]})

    def test_low_ports_are_distinct_free_and_below_the_ephemeral_range(self):
        ports = low_free_ports(6, taken={LOW_PORTS[0]})
        self.assertEqual(len(set(ports)), 6)
        self.assertTrue(all(LOW_PORTS[0] < p <= LOW_PORTS[1] < 32768 for p in ports))

    def test_logins_are_counted_from_the_sshd_log(self):
        text = (f"Server listening on 127.0.0.1 port 2201.\n"
                f"Accepted publickey for {U1} from 127.0.0.1 port 40000 ssh2: ED25519 SHA256:x\n"
                f"Accepted publickey for {U1}x from 127.0.0.1 port 40001 ssh2: ED25519 SHA256:x\n"
                f"Accepted publickey for {U1} from 127.0.0.1 port 40002 ssh2: ED25519 SHA256:x\n")
        self.assertEqual(count_logins(text, U1), 2)
        self.assertEqual(count_logins(text, U2), 0)

    def test_sshd_config(self):
        conf = sshd_config(2222, Path("/t/hk"), Path("/t/p.pid"), DEPLOY_USERS)
        for line in ("Port 2222", "ListenAddress 127.0.0.1", "HostKey /t/hk",
                     "PidFile /t/p.pid", "PasswordAuthentication no",
                     "KbdInteractiveAuthentication no", "UsePAM no", f"AllowUsers {U1} {U2}"):
            self.assertIn(line + "\n", conf)

    def test_the_ecosystem_file_read_by_node(self):
        """The deploy envs as both managers read them, and the app's PORT per env (0 for this
        user: the ports are the test users')."""
        if not shutil.which("node"):
            self.skipTest("node not found")
        text = ecosystem_js({U1: 2201, U2: 2202},
                            {"pm2": {U1: 3001, U2: 3002}, "kelpie": {U1: 4001, U2: 4002}},
                            Path("/t/id"), Path("/t/kh"), Path("/t/app.git"))
        with tempfile.TemporaryDirectory(prefix="kelpie-bench-selftest-") as d:
            f = Path(d) / "ecosystem.config.js"
            f.write_text(text)
            out = subprocess.run(["node", "-e", f"console.log(JSON.stringify(require({str(f)!r})))"],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
        conf = json.loads(out)
        app = conf["apps"][0]
        self.assertEqual((app["name"], app["script"], app["instances"], app["exec_mode"]),
                         ("web", "server.js", 2, "cluster"))
        self.assertEqual(app["env_pm2"], {"PORT": 0})
        kel, pm2 = conf["deploy"]["kelpie"], conf["deploy"]["pm2"]
        self.assertEqual(kel["host"][1], {"host": "127.0.0.1", "port": 2202, "user": U2})
        self.assertEqual(pm2["host"][0], {"host": "127.0.0.1", "port": "2201", "user": U1})
        self.assertEqual((kel["path"], pm2["path"]), (KELPIE_PATH, PM2_PATH))
        self.assertEqual(conf["deploy"]["kelpie_fail"]["post-deploy"], "exit 3")
        self.assertIn("pm2 startOrReload", pm2["post-deploy"])
        self.assertIn("$HOME/bin", pm2["env"]["PATH"])
        self.assertNotIn("'", json.dumps(conf["deploy"]))  # pm2-deploy: echo '<json>'

    def test_summary(self):
        s = summarize_deploy(PM2)
        self.assertEqual((s["setup_s"], s["first_s"], s["deploy_s"]), (2.1, 4.5, 12.0))
        self.assertEqual(s["failed"], {U1: 14, U2: 11})
        self.assertEqual((s["failed_total"], s["requests_total"]), (25, 2_000_000))
        self.assertEqual(s["rounds_not_switched"], 0)
        stuck = {**loaded(0, 2.0, "v1", 0, 0, 10), "served_after": {U1: "v1", U2: "v2"}}
        broken = {"rounds": [loaded(1, 3.0, "v2", 0, 0, 10), stuck]}
        s = summarize_deploy(broken)
        self.assertEqual((s["deploy_s"], s["rounds_failed_rc"], s["setup_s"]), (2.0, [1], None))
        self.assertEqual(s["rounds_not_switched"], 1)
        self.assertIn("2.00 s (3.00 s, 2.00 s); 1 round(s) failed; 1 round(s) left a host on "
                      "the old version |", build_deploy_table({"kelpie": broken}))

    def test_what_a_failed_post_deploy_leaves(self):
        cell = failure_cell(PM2["fail"])
        self.assertIn("exit 1 after 2.70 s", cell)
        self.assertIn(f"{U1}: v1 checked out in current (was v2), `.deploys` ends v1, "
                      "serving v2", cell)
        self.assertIn(f"{U2}: unchanged (current v2, serving v2); 0 failed", cell)
        cell = failure_cell(KELPIE["fail"])
        self.assertIn(f"{U1}: unchanged (current v2, serving v2), the new release marked "
                      "FAILED", cell)
        self.assertEqual(failure_cell(None), "n/a")

    def test_tables(self):
        results = {"pm2": PM2, "kelpie": KELPIE}
        table = build_deploy_table(results)
        self.assertIn("| PM2 | 2.10 s | 4.50 s | 12.00 s (13.30 s, 11.00 s, 12.00 s) | "
                      "25 (14 + 11: read 23, non2xx 2) of 2.00M |", table)
        self.assertIn("| Kelpie | 0.45 s | 0.63 s | 1.70 s (1.96 s, 1.50 s, 1.70 s) | "
                      "0 (0 + 0) of 640.0k |", table)
        broken = build_deploy_table({"kelpie": {"setup": {"wall_s": 0.4}, "rounds": [],
                                                "error": "RuntimeError: boom"}})
        self.assertIn("| Kelpie | 0.40 s | n/a | RuntimeError: boom |", broken)
        rounds = build_rounds_table(results)
        self.assertIn("| PM2 | 1 | v2 | 0 | 13.30 s | 8 / 8 | 11 / 10 | 0 / 2 (reset 2) | "
                      "7.10 s / 12.40 s |", rounds)
        self.assertIn("| PM2 | post-deploy `exit 3` | v1 | 1 | 2.70 s | ? / ? | 0 / 0 | ? / ? | "
                      "never / never |", rounds)
        self.assertIn("| Kelpie | post-deploy `exit 3` | v1 | 1 | 1.25 s | ? / ? | ? / ? | ? / ? "
                      "| never / never |", rounds)

    def test_the_section_goes_before_the_readme_line_then_is_replaced_in_place(self):
        report = f"# Results\n\n{README_LINE}\n"
        once = merge_deploy_section(report, deploy_section("T1", "R1", "N", "run", {}))
        self.assertLess(once.index(DEPLOY_BEGIN), once.index(README_LINE))
        twice = merge_deploy_section(once, deploy_section("T2", "R2", "N", "run", {"a": 1.23456}))
        self.assertEqual(twice.count(DEPLOY_END), 1)
        self.assertIn("T2", twice)
        self.assertNotIn("T1", twice)
        self.assertIn('"a": 1.235', twice)
        raw = raw_samples({"pm2": {**PM2, "summary": {"x": 1}}}, {"pm2": "7"})
        self.assertNotIn("summary", raw["pm2"])
        self.assertEqual(raw["pm2"]["rounds"][0]["load"][U1],
                         {"failed": 11, "read": 11, "requests": 500000})
        text = compact_json(raw)
        self.assertEqual(json.loads(text), raw)
        self.assertIn('\n  "rounds": [\n   {"rc": 0, "wall_s": 13.3,', text)
        with tempfile.TemporaryDirectory(prefix="kelpie-bench-selftest-") as d:
            f = Path(d) / "RESULTS.md"
            f.write_text(twice)
            self.assertTrue(existing_deploy_section(f).startswith(DEPLOY_BEGIN))
            self.assertIsNone(existing_deploy_section(Path(d) / "none.md"))
