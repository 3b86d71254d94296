#!/usr/bin/env python3
"""Start each ecosystem file shape of bench/shapes/ under PM2 and under Kelpie, each in a home
of its own, and compare what their `jlist` says of every instance: name, id, instances, status,
interpreter, args, cwd, the environment the file sets, the log paths.

    python3 bench/shapes/compare.py [--pm2 PATH] [--kelpie PATH] [--markdown] [SHAPE...]

Both managers run the same copy of a shape (one temporary directory), one after the other;
paths are shown relative to it (`{dir}`) and to the manager's home (`{home}`). A shape's
`shape.json` may give the start's extra arguments (`{"args": ["--env", "production"]}`).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FILES = ("ecosystem.config.js", "ecosystem.json", "process.yml")
FIELDS = ("ids", "status", "interpreter", "args", "cwd", "env", "logs")
# Read from every instance's env besides the keys its file sets.
ALWAYS = ("NODE_APP_INSTANCE", "INSTANCE_ID", "PORT")
SETTLE = 4.0


def file_keys(path):
    """The variable names a file sets (env, env_*, env_file's), read with node for JS/JSON."""
    if path.endswith(".yml"):
        return {"NODE_ENV"}
    script = (
        "const p=require('path'),fs=require('fs');let c=require(process.argv[1]);"
        "let apps=Array.isArray(c)?c:(c.apps||[c]);let k=new Set();"
        "for(const a of apps){for(const[f,v]of Object.entries(a)){"
        "if(f.startsWith('env')&&v&&typeof v==='object')Object.keys(v).forEach(x=>k.add(x));"
        "if(f==='env_file'){const t=fs.readFileSync(p.resolve(p.dirname(process.argv[1]),a.cwd||'.',v),'utf8');"
        "t.split('\\n').forEach(l=>{const m=l.match(/^([A-Za-z_][A-Za-z0-9_]*)=/);if(m)k.add(m[1])})}}}"
        "console.log(JSON.stringify([...k]))"
    )
    out = subprocess.run(["node", "-e", script, path], capture_output=True, text=True)
    return set(json.loads(out.stdout or "[]"))


def normalize(value, shape_dir, home):
    if isinstance(value, str):
        node = shutil.which("node") or "node"
        return (
            value.replace(shape_dir, "{dir}")
            .replace(home, "{home}")
            .replace(os.path.realpath(node), "{node}")
            .replace(node, "{node}")
        )
    if isinstance(value, list):
        return [normalize(v, shape_dir, home) for v in value]
    return value


def describe(app, keys, shape_dir, home):
    env_all = app.get("pm2_env", {})
    env = env_all.get("env") or {}
    norm = lambda v: normalize(v, shape_dir, home)  # noqa: E731
    return {
        "name": app.get("name"),
        "ids": app.get("pm_id"),
        "status": env_all.get("status"),
        "interpreter": norm(env_all.get("exec_interpreter")),
        # PM2 leaves `args` out when there are none, Kelpie shows []: counted as the same
        # here (a jlist shape difference, listed in docs/pm2-shapes.md).
        "args": norm(env_all.get("args") or []),
        "cwd": norm(env_all.get("pm_cwd")),
        "env": {k: str(env.get(k, env_all.get(k))) for k in sorted(keys) if k in env or k in env_all},
        "logs": norm([env_all.get("pm_out_log_path"), env_all.get("pm_err_log_path")]),
    }


def run_manager(kind, binary, shape_dir, file_name, extra, keys):
    home = tempfile.mkdtemp(prefix=f"shape-{kind}-")
    env = dict(os.environ)
    env["PM2_HOME" if kind == "pm2" else "KELPIE_HOME"] = home
    run = lambda *a: subprocess.run(  # noqa: E731
        [binary, *a], cwd=shape_dir, env=env, capture_output=True, text=True, timeout=120
    )
    try:
        started = run("start", file_name, *extra)
        time.sleep(SETTLE)
        listed = run("jlist")
        try:
            apps = json.loads(listed.stdout)
        except json.JSONDecodeError:
            apps = []
        rows = [describe(a, keys, shape_dir, home) for a in sorted(apps, key=lambda a: a.get("pm_id", 0))]
        said = re.sub(r"\x1b\[[0-9;]*m", "", started.stderr or "").strip().splitlines()[-1:]
        return rows, started.returncode, [normalize(line, shape_dir, home) for line in said]
    finally:
        run("kill")
        shutil.rmtree(home, ignore_errors=True)


def by_app(rows):
    """Each app's values per field, instances in id order."""
    apps = {}
    for row in rows:
        app = apps.setdefault(row["name"], {f: [] for f in FIELDS})
        for field in FIELDS:
            app[field].append(row[field])
    for app in apps.values():
        for field in FIELDS:
            if field != "ids" and all(v == app[field][0] for v in app[field]):
                app[field] = app[field][:1]
    return apps


def compare(shape, pm2, kelpie):
    src = os.path.join(HERE, shape)
    file_name = next(f for f in FILES if os.path.exists(os.path.join(src, f)))
    extra = []
    if os.path.exists(os.path.join(src, "shape.json")):
        with open(os.path.join(src, "shape.json")) as f:
            extra = json.load(f).get("args", [])
    work = tempfile.mkdtemp(prefix="shape-")
    shape_dir = os.path.join(work, shape)
    shutil.copytree(src, shape_dir)
    keys = file_keys(os.path.join(shape_dir, file_name)) | set(ALWAYS)
    try:
        p_rows, p_rc, p_err = run_manager("pm2", pm2, shape_dir, file_name, extra, keys)
        k_rows, k_rc, k_err = run_manager("kelpie", kelpie, shape_dir, file_name, extra, keys)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    p_apps, k_apps = by_app(p_rows), by_app(k_rows)
    diffs = []
    if sorted(p_apps) != sorted(k_apps):
        diffs.append(("apps", sorted(p_apps), sorted(k_apps)))
    for name in sorted(set(p_apps) & set(k_apps)):
        for field in FIELDS:
            if p_apps[name][field] != k_apps[name][field]:
                diffs.append((f"{name}.{field}", p_apps[name][field], k_apps[name][field]))
    summary = ", ".join(
        f"{n}×{len(a['ids'])} {a['ids']} {'/'.join(a['status'])}" for n, a in sorted(p_apps.items())
    )
    if not p_apps and not k_apps:
        summary = f"both refuse the file: PM2 `{' '.join(p_err)}`, Kelpie `{' '.join(k_err)}`"
    return {
        "shape": shape,
        "pm2": summary or f"nothing started (exit {p_rc}: {' '.join(p_err)})",
        "same": [f for f in FIELDS if not any(d[0].endswith("." + f) for d in diffs)],
        "diffs": diffs,
        "kelpie_exit": k_rc,
        "kelpie_err": k_err,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pm2", default="/tmp/pm2x/node_modules/.bin/pm2")
    parser.add_argument("--kelpie", default=os.path.join(ROOT, "target", "debug", "kelpie"))
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("shapes", nargs="*")
    opts = parser.parse_args()
    shapes = opts.shapes or sorted(
        d for d in os.listdir(HERE) if os.path.isdir(os.path.join(HERE, d)) and d[:2].isdigit()
    )
    results = []
    for shape in shapes:
        result = compare(shape, opts.pm2, opts.kelpie)
        results.append(result)
        print(f"{shape}: {len(result['diffs'])} differences", file=sys.stderr)
    print("| shape | PM2 7 (apps × instances, ids, status) | same in Kelpie | differs |")
    print("|---|---|---|---|")
    for r in results:
        differs = "; ".join(f"`{what}` PM2 `{json.dumps(p)}`, Kelpie `{json.dumps(k)}`" for what, p, k in r["diffs"])
        print(f"| {r['shape']} | {r['pm2']} | {', '.join(r['same'])} | {differs or '—'} |")
    same = sum(1 for r in results if not r["diffs"])
    print(f"\n{same} of {len(results)} shapes identical on every field compared.")


if __name__ == "__main__":
    main()
