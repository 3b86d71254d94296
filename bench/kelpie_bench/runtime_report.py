"""The runtime scenario's table, notes and section of RESULTS.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .report import existing_section, merge_section
from .runtime import (
    RUNTIME_APPS, RUNTIME_BINARY_TARGET_MB, RUNTIME_ORPHAN_LIFE_MS, RUNTIME_ORPHANS,
    RUNTIME_SETTLE_S, RUNTIME_ZOMBIE_WAIT_S, STATIC_TRIPLE,
)
from .stats import fmt, fmt_ratio, round_floats


def build_runtime_table(pm2: dict | None, kel: dict, sizes: dict) -> str:
    """The runtime scenario's rows. pm2/kel: summarize_runtime() (pm2 None with --kelpie-only)."""
    p = pm2 or {}
    mib = 1024 * 1024

    def verdict(ok: bool | None) -> str:
        return "" if ok is None else (" (met)" if ok else " (missed)")

    def stop(d: dict) -> str:
        if not d or not d.get("ok"):
            return "n/a"
        s = f"{d['stop_s'] * 1e3:.0f} ms"
        if d["ok"] > 1:
            s += f" ({d['stop_s_min'] * 1e3:.0f}–{d['stop_s_max'] * 1e3:.0f})"
        if d["ok"] < d["rounds"]:
            s += f", {d['rounds'] - d['ok']} round(s) failed"
        return s

    def exits(d: dict) -> str:
        if not d or not d.get("ok"):
            return "n/a"
        s = f"0 in {d['exit_0']} of {d['ok']}"
        if d["exit_codes"]:
            s += " (else " + ", ".join(str(c) for c in d["exit_codes"]) + ")"
        return s

    def zombies(d: dict) -> str:
        if not d or d.get("zombies") is None:
            return "n/a"
        return f"{d['zombies']:.0f} (worst {d['zombies_max']})"

    def val(d: dict, key: str, unit: str = "", scale: float = 1, nd: int = 0) -> str:
        v = (d or {}).get(key)
        return "n/a" if v is None else f"{v * scale:.{nd}f} {unit}".rstrip()

    ps, ks = p.get("stop") or {}, kel.get("stop") or {}
    po, ko = p.get("orphans") or {}, kel.get("orphans") or {}
    n = RUNTIME_APPS
    lines = ["| Metric | pm2-runtime (PM2 7) | kelpie runtime | PM2 / Kelpie | Target |",
             "|---|---:|---:|---:|---|"]
    pv = ps.get("stop_s") if ps.get("ok") else None
    kv = ks.get("stop_s") if ks.get("ok") else None
    lines.append(f"| Stop on SIGTERM, {n} apps (signal to PID 1 → the runtime has exited): "
                 f"median (min–max) | {stop(ps)} | {stop(ks)} | {fmt_ratio(pv, kv)} | - |")
    lines.append(f"| Exit code after SIGTERM (stop rounds) | {exits(ps)} | {exits(ks)} | - | "
                 f"Kelpie 0{verdict(None if not ks.get('ok') else ks['exit_0'] == ks['ok'])} |")
    kz = ko.get("zombies_max")
    lines.append(f"| Zombies in the namespace {RUNTIME_ZOMBIE_WAIT_S:g} s after {n} apps each "
                 f"left {RUNTIME_ORPHANS} orphans (exiting after {RUNTIME_ORPHAN_LIFE_MS} ms): "
                 f"median (worst round) | {zombies(po)} | {zombies(ko)} | - | Kelpie 0"
                 f"{verdict(None if kz is None else kz == 0)} |")
    lines.append(f"| Orphans the apps reported spawned, per round (median) | "
                 f"{val(po, 'orphans_spawned')} | {val(ko, 'orphans_spawned')} | - | "
                 f"{n * RUNTIME_ORPHANS} (= {n} apps × {RUNTIME_ORPHANS}, from the apps' output) |")
    pv = po.get("stop_s") if po.get("ok") else None
    kv = ko.get("stop_s") if ko.get("ok") else None
    lines.append(f"| Stop on SIGTERM with the orphans' apps: median (min–max) | {stop(po)} | "
                 f"{stop(ko)} | {fmt_ratio(pv, kv)} | - |")
    lines.append(f"| Start: `unshare` spawned → {n} apps running, median | "
                 f"{val(ps, 'start_s', 'ms', 1e3)} | {val(ks, 'start_s', 'ms', 1e3)} | "
                 f"{fmt_ratio(ps.get('start_s'), ks.get('start_s'))} | - |")
    lines.append(f"| PID 1 RSS with {n} apps, median | {val(ps, 'rss_mb', 'MB', 1, 1)} | "
                 f"{val(ks, 'rss_mb', 'MB', 1, 1)} | {fmt_ratio(ps.get('rss_mb'), ks.get('rss_mb'))} "
                 f"| - |")
    kb = sizes.get("kelpie_bytes")
    kdesc = sizes.get("kelpie_file") or "static"
    lines.append(f"| Static binary (`kelpie`, glibc crt-static {STATIC_TRIPLE}; {kdesc}) | - | "
                 f"{fmt(kb and kb / mib, 'MB')} | - | Kelpie < {RUNTIME_BINARY_TARGET_MB} MB"
                 f"{verdict(None if kb is None else kb < RUNTIME_BINARY_TARGET_MB * mib)} |")
    pmb, pmf, nb = sizes.get("pm2_modules_bytes"), sizes.get("pm2_modules_files"), \
        sizes.get("node_bytes")
    lines.append(f"| What a Node.js image adds for the supervisor: PM2's `node_modules` "
                 f"(`npm install pm2@7`) / the kelpie binary | "
                 f"{fmt(pmb and pmb / mib, 'MB')}{f' ({pmf:,} files)' if pmf else ''} | "
                 f"{fmt(kb and kb / mib, 'MB')} (1 file) | {fmt_ratio(pmb, kb)} | - |")
    total = pmb + nb if pmb is not None and nb is not None else None
    lines.append(f"| What an image without Node adds: PM2's `node_modules` + the `node` binary "
                 f"({fmt(nb and nb / mib, 'MB')}) / the kelpie binary | "
                 f"{fmt(total and total / mib, 'MB')} | {fmt(kb and kb / mib, 'MB')} | "
                 f"{fmt_ratio(total, kb)} | - |")
    return "\n".join(lines)


def runtime_notes(cfg: argparse.Namespace) -> str:
    return (
        f"Runtime: each runtime is PID 1 of its own pid namespace, as in a container: `unshare "
        f"--pid --fork --kill-child --mount-proc pm2-runtime ecosystem.json` (PM2's daemon in "
        f"the same Node.js process, `PM2_HOME` and `HOME` in a fresh temp dir) and the same "
        f"with `kelpie runtime ecosystem.json` (fresh `KELPIE_HOME`), the same file: "
        f"{RUNTIME_APPS} apps, the static `fake-app` with `interpreter: \"none\"`. Stop: the "
        f"apps have no handlers, so the stop signal (SIGINT for both) ends them at once; "
        f"{RUNTIME_SETTLE_S:g} s after all {RUNTIME_APPS} run (seen in `/proc` below PID 1), "
        f"SIGTERM to PID 1 and the time until `unshare`'s wait for it returns (the kernel "
        f"has then killed and reaped whatever was left in the namespace). Zombies: the apps run "
        f"`fake-app --orphans {RUNTIME_ORPHANS} --orphan-life {RUNTIME_ORPHAN_LIFE_MS}`: each "
        f"starts a child that starts a grandchild and exits (a daemonizing double fork), so the "
        f"grandchild is re-parented to PID 1 and exits {RUNTIME_ORPHAN_LIFE_MS} ms later; "
        f"{RUNTIME_ZOMBIE_WAIT_S:g} s after all apps run, the processes in state `Z` below PID "
        f"1 are counted (then SIGTERM, timed as above). {cfg.runtime_rounds} round(s) per "
        f"variant and runtime, PM2 and Kelpie in turn in each round; medians. Start is from "
        f"spawning `unshare` until all {RUNTIME_APPS} apps run (polled every 10 ms); PID 1's RSS "
        f"is its `VmRSS` just before the SIGTERM. Sizes: the static kelpie as built by the "
        f"bench (`RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release --target "
        f"{STATIC_TRIPLE}`, stripped by the release profile); the Dockerfile builds it for "
        f"musl, whose target is not installed on this machine, so the image's binary is not "
        f"measured here. PM2: the bytes of the regular files under `node_modules` of `npm "
        f"install pm2@7` (each inode once; what the install adds to an image layer), and the "
        f"`node` binary of this machine (an image without Node needs it for PM2; a Node.js image "
        f"has it anyway).")


RUNTIME_BEGIN = "<!-- bench:runtime:begin -->"
RUNTIME_END = "<!-- bench:runtime:end -->"


def runtime_section(table: str, notes: str, run_line: str, raw: dict) -> str:
    """The runtime scenario's part of RESULTS.md, self-contained like the cluster section, so
    that `--only runtime` can replace it in a report that has the others."""
    return f"""{RUNTIME_BEGIN}
## Runtime (containers)

{run_line}

{table}

{notes}

<details><summary>Raw samples (runtime)</summary>

```json
{json.dumps(round_floats(raw), indent=1)}
```

</details>
{RUNTIME_END}"""


def merge_runtime_section(report: str, section: str | None) -> str:
    return merge_section(report, RUNTIME_BEGIN, RUNTIME_END, section)


def existing_runtime_section(path: Path | None) -> str | None:
    return existing_section(path, RUNTIME_BEGIN, RUNTIME_END)
