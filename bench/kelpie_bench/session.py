"""One bench run (not --check, not --self-test): its temp dir and app scripts, the managers it
has alive (all cleaned up at exit or on a signal), and the scenarios measured with PM2, then
with Kelpie, each with a fresh daemon and home."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from .cluster import bench_cluster
from .cluster_apps import CLUSTER_APP, CLUSTER_APP_JS
from .cluster_graceful import bench_bound
from .common import KELPIE_BIN, log
from .core import bench_manager, bench_restart_only
from .core_restart import app_alone_start_ms
from .health import bench_health_memory
from .health_cpu import bench_health_cpu
from .logs import app_alone, bench_logs
from .logs_apps import LOG_VARIANTS
from .logs_slow import bench_slow_disk, write_slow_app, SLOW_LINES
from .managers import install_pm2, Kelpie, KelpieUnprivileged, Manager, Pm2, unprivileged_possible
from .processes import free_port, kill_with_marker
from .reliability import bench_reliability
from .reliability_apps import REL_SCRIPTS
from .runtime import bench_runtime, KELPIE_STATIC, RUNTIME_RUNS
from .stats import median
from .wrk import WRK_PROCS


class Session:
    """What main() ran and measured. The results stay None / empty for a scenario not run:
    pm2_res, kel_res (core); logs (variant key -> {"alone", "pm2", "kelpie"}); cluster ("pm2",
    "kelpie" -> summarize_cluster()); health ("pm2", "kelpie" -> {"cpu", "memory"}); runtime
    (bench_runtime()); reliability ("pm2", "kelpie" -> bench_reliability())."""

    def __init__(self, cfg: argparse.Namespace, tmp: Path, wrk: str | None):
        self.cfg, self.tmp, self.wrk = cfg, tmp, wrk
        self.log_scripts: dict[str, Path] = {}
        for v in LOG_VARIANTS:
            self.log_scripts[v.key] = tmp / v.filename
            self.log_scripts[v.key].write_text(v.js % cfg.log_lines)
        self.cluster_script = tmp / f"{CLUSTER_APP}.js"
        self.cluster_script.write_text(CLUSTER_APP_JS)
        cfg.tmp = tmp
        self.rel_scripts: dict[str, Path] = {}
        for key, (fname, js) in REL_SCRIPTS.items():
            self.rel_scripts[key] = tmp / fname
            self.rel_scripts[key].write_text(js)

        self.managers: list[Manager] = []
        self.pm2_res: dict | None = None
        self.kel_res: dict | None = None
        self.logs: dict[str, dict] = {v.key: {} for v in LOG_VARIANTS} if cfg.logs else {}
        # The app faster than its log file (logs_slow.py): manager -> result.
        self.logs_slow: dict[str, dict] = {}
        self.cluster: dict[str, dict | None] = {}
        self.health: dict[str, dict] = {}
        self.runtime: dict | None = None
        self.reliability: dict[str, dict] = {}
        self.versions: dict[str, str] = {}
        self.pm2_bin: Path | None = None

    def cleanup_all(self) -> None:
        for m in self.managers:
            try:
                m.cleanup()
            except Exception as e:  # noqa: BLE001
                log(f"cleanup of {m.label} failed: {e}")
        self.managers.clear()
        for p in WRK_PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        WRK_PROCS.clear()
        for run in list(RUNTIME_RUNS):
            run.kill()
        RUNTIME_RUNS.clear()
        for script in (*self.log_scripts.values(), self.cluster_script,
                       *self.rel_scripts.values()):
            kill_with_marker(str(script))  # a logs or cluster app left behind, if any
        if not self.cfg.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run_one(self, m: Manager, scenario) -> dict:
        """One scenario with a fresh daemon and home, stopped afterwards (never two daemons)."""
        self.managers.append(m)
        res = scenario(m)
        m.cleanup()
        return res

    def run_part(self, m: Manager, part) -> dict:
        """Like run_one, for a part of the reliability scenario: an error is recorded (and
        shown in the table) instead of ending the run; the manager is cleaned up either way."""
        self.managers.append(m)
        m.app_markers = (*m.app_markers, *map(str, self.rel_scripts.values()),
                         str(self.cluster_script))
        try:
            return part(m)
        except Exception as e:  # noqa: BLE001 - reported in the table
            log(f"{m.label}: reliability part failed: {type(e).__name__}: {e}")
            return {"error": f"{type(e).__name__}: {e}"}
        finally:
            m.cleanup()
            self.managers.remove(m)
            for script in (*self.rel_scripts.values(), self.cluster_script):
                kill_with_marker(str(script))  # an app the killed daemon left behind

    def measure(self) -> None:
        """Every scenario cfg asks for: PM2's (unless --kelpie-only), then Kelpie's; the runtime
        scenario last. Cleans up everything, whatever happens."""
        cfg, tmp = self.cfg, self.tmp
        try:
            for v in LOG_VARIANTS if cfg.logs else ():
                self.logs[v.key]["alone"] = app_alone(self.log_scripts[v.key], tmp / "alone", cfg)
            version_bin = KELPIE_BIN if KELPIE_BIN.exists() else KELPIE_STATIC
            self.versions = {"kelpie": subprocess.run([str(version_bin), "--version"],
                                                      capture_output=True,
                                                      text=True).stdout.strip()}
            if not cfg.kelpie_only:
                self.measure_pm2()
            self.measure_kelpie()
            if cfg.runtime:
                self.runtime = bench_runtime(
                    self.pm2_bin.parent / "pm2-runtime" if self.pm2_bin else None, tmp, cfg)
        finally:
            self.cleanup_all()

    def measure_pm2(self) -> None:
        cfg, tmp, wrk = self.cfg, self.tmp, self.wrk
        run_one = self.run_one
        pm2_bin = install_pm2(cfg.pm2_prefix.resolve() if cfg.pm2_prefix else tmp / "pm2")
        self.pm2_bin = pm2_bin
        probe = Pm2(tmp / "pm2-version", pm2_bin)
        self.versions["pm2"] = probe.run("--version", capture=True).stdout.decode().strip() \
            .splitlines()[-1]
        run_one(probe, lambda m: None)  # `pm2 --version` may start a daemon: stop it
        if cfg.core:
            self.pm2_res = run_one(Pm2(tmp / "pm2-run", pm2_bin),
                                   lambda m: bench_manager(m, cfg.apps, cfg))
        for v in LOG_VARIANTS if cfg.logs else ():
            self.logs[v.key]["pm2"] = run_one(
                Pm2(tmp / f"pm2-logs-{v.key}", pm2_bin),
                lambda m, v=v: bench_logs(m, self.log_scripts[v.key], cfg))
        if cfg.logs:
            self.logs_slow["pm2"] = run_one(
                Pm2(tmp / "pm2-logs-slow", pm2_bin),
                lambda m: bench_slow_disk(m, write_slow_app(tmp), SLOW_LINES))
        if cfg.cluster:
            self.cluster["pm2"] = run_one(
                Pm2(tmp / "pm2-cluster", pm2_bin),
                lambda m: bench_cluster(m, self.cluster_script, free_port(), wrk, cfg))
        if cfg.health:
            self.health["pm2"] = {
                "cpu": run_one(Pm2(tmp / "pm2-health-cpu", pm2_bin),
                               lambda m: bench_health_cpu(m, cfg.health_apps, cfg)),
                "memory": run_one(Pm2(tmp / "pm2-health-memory", pm2_bin),
                                  lambda m: bench_health_memory(
                                      m, {"main": cfg.health_rounds_pm2,
                                          "child": cfg.health_rounds_pm2_child},
                                      Pm2.memory_check_period_s, cfg))}
        if cfg.reliability:
            self.reliability["pm2"] = bench_reliability(
                lambda k: Pm2(tmp / f"pm2-rel-{k}", pm2_bin), self.run_part, self.rel_scripts,
                self.cluster_script, cfg)

    def measure_kelpie(self) -> None:
        cfg, tmp, wrk = self.cfg, self.tmp, self.wrk
        run_one = self.run_one
        if cfg.core:
            kel_res = run_one(Kelpie(tmp / "kelpie-run"),
                              lambda m: bench_manager(m, cfg.apps, cfg))
            self.kel_res = kel_res
            alone = app_alone_start_ms(cfg.crash_rounds, tmp)
            kel_res["alone_start_ms"] = median(alone)
            kel_res["raw"]["alone_start_ms"] = alone
            ok, why = unprivileged_possible()
            if ok:
                kel_res["nocgroups"] = run_one(KelpieUnprivileged(tmp / "kelpie-nocg"),
                                               lambda m: bench_restart_only(m, cfg))
                kel_res["raw"]["nocgroups_restart_ms"] = kel_res["nocgroups"]["raw"]["restart_ms"]
            else:
                log(f"Kelpie without cgroups: skipped ({why})")
        for v in LOG_VARIANTS if cfg.logs else ():
            self.logs[v.key]["kelpie"] = run_one(
                Kelpie(tmp / f"kelpie-logs-{v.key}"),
                lambda m, v=v: bench_logs(m, self.log_scripts[v.key], cfg))
        if cfg.logs:
            self.logs_slow["kelpie"] = run_one(
                Kelpie(tmp / "kelpie-logs-slow"),
                lambda m: bench_slow_disk(m, write_slow_app(tmp), SLOW_LINES))
        if cfg.cluster:
            self.cluster["kelpie"] = run_one(
                Kelpie(tmp / "kelpie-cluster"),
                lambda m: bench_cluster(m, self.cluster_script, free_port(), wrk, cfg))
            try:
                self.cluster["kelpie"]["bound"] = bench_bound(self.cluster_script, free_port(),
                                                              wrk, cfg)
            except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
                log(f"the bound (the app run by hand) could not be measured: {e}")
        if cfg.health:
            self.health["kelpie"] = {
                "cpu": run_one(Kelpie(tmp / "kelpie-health-cpu"),
                               lambda m: bench_health_cpu(m, cfg.health_apps, cfg)),
                "memory": run_one(Kelpie(tmp / "kelpie-health-memory"),
                                  lambda m: bench_health_memory(
                                      m, {"main": cfg.health_rounds_kelpie,
                                          "child": cfg.health_rounds_kelpie},
                                      Kelpie.memory_check_period_s, cfg))}
        if cfg.reliability:
            self.reliability["kelpie"] = bench_reliability(
                lambda k: Kelpie(tmp / f"kelpie-rel-{k}"), self.run_part, self.rel_scripts,
                self.cluster_script, cfg)
