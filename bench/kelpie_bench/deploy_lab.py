"""The deploy scenario's lab: two throw-away users on this machine, each standing for one host
and reached through an sshd of its own on 127.0.0.1 (docs/deploy.md, the reference's test
harness, done in Python), with `kelpie` and `pm2` in `~/bin`; the app's git repository (tags
v1 and v2) and its ecosystem file, whose deploy section has an env per manager. Needs root
(useradd, sshd). The cleanup removes it all, also after an error or a signal."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .common import log
from .processes import cmdline, pid_alive, read_pidfile

DEPLOY_USERS = ("kbdep1", "kbdep2")
SSHD = Path("/usr/sbin/sshd")
DEPLOY_VERSIONS = ("v1", "v2")
INSTANCES = 2
LOW_PORTS = (20000, 32000)  # below the ephemeral range (32768-): no client socket takes them
# Where each manager deploys on each host (~ expands on the host for Kelpie; PM2 resolves a
# path locally, so it gets an absolute one that the host's shell completes: see ecosystem_js).
KELPIE_PATH = "~/kapp"
PM2_PATH = "/home/$USER/pm2app"
PM2_DEPLOY_USER = "kbdep-bench"  # USER for `pm2 deploy`: its log is /tmp/pm2-deploy-$USER.log
LOAD_LEAD_S = 2.0   # the load starts this long before each measured deploy ...
LOAD_TAIL_S = 2.0   # ... and lasts this long after it
WRK_CONNECTIONS = 8  # per host, keep-alive

SERVER_JS = """\
// The deploy scenario's app: answers the VERSION it was started with (the code it loaded).
const http = require('http');
const fs = require('fs');
const path = require('path');
const version = fs.readFileSync(path.join(__dirname, 'VERSION'), 'utf8').trim();
http.createServer((req, res) => res.end(version + '\\n')).listen(Number(process.env.PORT));
"""


def deploy_possible() -> tuple[bool, str]:
    """Whether the scenario can run here: root (users, sshd), sshd and the tools it uses."""
    if os.geteuid() != 0:
        return False, "not root: the deploy scenario creates users and runs sshd"
    if not SSHD.exists():
        return False, f"{SSHD} not found (apt-get install openssh-server)"
    for tool in ("useradd", "usermod", "userdel", "pkill", "su", "ssh", "ssh-keygen", "git",
                 "node"):
        if shutil.which(tool) is None:
            return False, f"`{tool}` not found"
    return True, ""


def low_free_ports(n: int, taken: set[int] | None = None) -> list[int]:
    """n distinct TCP ports in LOW_PORTS that nothing listens on right now (127.0.0.1)."""
    taken = set(taken or ())
    out: list[int] = []
    while len(out) < n:
        port = random.randint(*LOW_PORTS)
        if port in taken or port in out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        out.append(port)
    return out


def sshd_config(port: int, hostkey: Path, pidfile: Path, users: tuple[str, ...]) -> str:
    return "\n".join([f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {hostkey}",
                      f"PidFile {pidfile}", "PasswordAuthentication no",
                      "KbdInteractiveAuthentication no", "UsePAM no",
                      "AllowUsers " + " ".join(users), ""])


def ecosystem_js(ssh_ports: dict[str, int], app_ports: dict[str, dict[str, int]], key: Path,
                 known_hosts: Path, repo: Path) -> str:
    """The app's ecosystem file (committed in the repository): app `web` (server.js, 2
    instances, cluster mode) whose PORT depends on the manager's env and on the user running it
    (both "hosts" are this machine), and the deploy envs: `kelpie` (host objects with numeric
    ports, `~/kapp`), `pm2` (what works with pm2-deploy 1.0.2: string ports, an absolute path
    completed by the host's shell, PATH in `env` for its non-interactive ssh), and each with a
    post-deploy that exits 3 (`kelpie_fail`, `pm2_fail`). No `'` anywhere in a deploy env:
    pm2-deploy passes it as `echo '<json>'`."""
    users = sorted(ssh_ports)
    common = {"key": str(key),
              "ssh_options": ["IdentitiesOnly=yes", f"UserKnownHostsFile={known_hosts}",
                              "StrictHostKeyChecking=accept-new"],
              "repo": str(repo), "ref": "origin/main"}
    kelpie = {**common, "host": [{"host": "127.0.0.1", "port": ssh_ports[u], "user": u}
                                 for u in users],
              "path": KELPIE_PATH,
              "post-deploy": "kelpie startOrReload ecosystem.config.js --env kelpie"}
    pm2 = {**common, "host": [{"host": "127.0.0.1", "port": str(ssh_ports[u]), "user": u}
                              for u in users],
           "path": PM2_PATH,
           "env": {"PATH": "$HOME/bin:/usr/local/bin:/usr/bin:/bin"},
           "post-deploy": "pm2 startOrReload ecosystem.config.js --env pm2"}
    deploy = {"kelpie": kelpie, "kelpie_fail": {**kelpie, "post-deploy": "exit 3"},
              "pm2": pm2, "pm2_fail": {**pm2, "post-deploy": "exit 3"}}
    envs = {f"env_{env}": f"{{PORT: port({json.dumps(env.split('_')[0])})}}" for env in deploy}
    env_lines = "".join(f"    {k}: {v},\n" for k, v in envs.items())
    return f"""// The bench's deploy scenario (bench/kelpie_bench/deploy_lab.py), written for one run.
const user = require('os').userInfo().username;
const PORTS = {json.dumps(app_ports)};
const port = (manager) => (PORTS[manager] || {{}})[user] || 0;
module.exports = {{
  apps: [{{
    name: 'web', script: 'server.js', instances: {INSTANCES}, exec_mode: 'cluster',
{env_lines}  }}],
  deploy: {json.dumps(deploy, indent=2)},
}};
"""


def count_logins(sshd_log: str, user: str) -> int:
    """The logins of user that an sshd log (`-E`) records."""
    return sum(1 for line in sshd_log.splitlines() if f"Accepted publickey for {user} " in line)


def run(argv: list[str], timeout: float = 120, check: bool = True, **kw
        ) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {p.returncode}: "
                           f"{(p.stdout + p.stderr)[-2000:]}")
    return p


class DeployLab:
    """The users, the sshds, the key, the repository and the ecosystem file of one run, under
    tmp (made world-traversable: the users read the repository and PM2's install there)."""

    def __init__(self, tmp: Path, kelpie_bin: Path, pm2_bin: Path | None):
        self.tmp, self.kelpie_bin, self.pm2_bin = tmp, kelpie_bin, pm2_bin
        self.users = DEPLOY_USERS
        ports = low_free_ports(len(self.users) * 3)
        self.ssh_ports = dict(zip(self.users, ports))
        self.app_ports = {"kelpie": dict(zip(self.users, ports[2:])),
                          "pm2": dict(zip(self.users, ports[4:]))}
        self.key, self.hostkey = tmp / "id", tmp / "hostkey"
        self.known_hosts = tmp / "known_hosts"
        self.repo, self.src = tmp / "app.git", tmp / "src"
        self.pm2_log = Path(f"/tmp/pm2-deploy-{PM2_DEPLOY_USER}.log")
        self.shas: dict[str, str] = {}  # tag -> full sha
        self.created_users: list[str] = []
        self.started = False

    # --- set up
    def start(self) -> None:
        os.chmod(self.tmp, 0o755)
        for u in self.users:
            self.remove_user(u)  # left by a run that crashed
        log(f"deploy lab: users {', '.join(self.users)}, sshd ports "
            f"{', '.join(map(str, self.ssh_ports.values()))}")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.hostkey)])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)])
        self.make_repo()
        for u in self.users:
            self.add_user(u)
        self.started = True
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        for u, port in self.ssh_ports.items():
            conf = self.tmp / f"sshd-{port}.conf"
            conf.write_text(sshd_config(port, self.hostkey, self.tmp / f"sshd-{port}.pid",
                                        self.users))
            run([str(SSHD), "-t", "-f", str(conf)])
            run([str(SSHD), "-f", str(conf), "-E", str(self.tmp / f"sshd-{port}.log")])
        self.wait_sshd()
        # pm2-deploy appends to /tmp/pm2-deploy-$USER.log here and (with `tee -a`) on each host.
        self.pm2_log.touch()
        os.chmod(self.pm2_log, 0o666)

    def make_repo(self) -> None:
        src = self.src
        src.mkdir()
        git = ["git", "-C", str(src), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        run(["git", "init", "-q", "-b", "main", str(src)])
        (src / "server.js").write_text(SERVER_JS)
        (src / "ecosystem.config.js").write_text(ecosystem_js(
            self.ssh_ports, self.app_ports, self.key, self.known_hosts, self.repo))
        for v in DEPLOY_VERSIONS:
            (src / "VERSION").write_text(v + "\n")
            run([*git, "add", "."])
            run([*git, "commit", "-q", "-m", v])
            run([*git, "tag", v])
            self.shas[v] = run([*git, "rev-parse", "HEAD"]).stdout.strip()
        run(["git", "clone", "-q", "--bare", str(src), str(self.repo)])
        run(["chmod", "-R", "a+rX", str(self.repo)])

    def add_user(self, u: str) -> None:
        run(["useradd", "-m", "-s", "/bin/bash", u])
        self.created_users.append(u)
        run(["usermod", "-p", "*", u])  # not locked ('!'): sshd with UsePAM no refuses those
        home = Path("/home") / u
        bind = home / "bin"
        run(["install", "-d", "-m", "755", "-o", u, "-g", u, str(bind)])
        run(["install", "-m", "755", "-o", u, "-g", u, str(self.kelpie_bin), str(bind / "kelpie")])
        if self.pm2_bin is not None:
            os.symlink(self.pm2_bin, bind / "pm2")
        run(["install", "-d", "-m", "700", "-o", u, "-g", u, str(home / ".ssh")])
        run(["install", "-m", "600", "-o", u, "-g", u, str(self.key) + ".pub",
             str(home / ".ssh" / "authorized_keys")])
        with open(home / ".profile", "a") as f:
            f.write('\nexport PATH="$HOME/bin:$PATH"\nexport PM2_HOME="$HOME/.pm2"\n')
        self.su(u, f"git config --global --add safe.directory {self.repo}")
        if self.pm2_bin is not None:
            # The user must be able to run PM2 from its install (a --pm2-prefix that only root
            # can read would not do).
            self.su(u, f"test -r {self.pm2_bin.resolve().parent.parent / 'package.json'} "
                       f"&& test -x {self.pm2_bin.resolve()}")

    def wait_sshd(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for port in self.ssh_ports.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"sshd on port {port} not listening; see "
                                           f"{self.tmp / f'sshd-{port}.log'}") from None
                    time.sleep(0.05)

    # --- use
    def su(self, u: str, command: str, timeout: float = 60, check: bool = True
           ) -> subprocess.CompletedProcess:
        """command in a login shell of user u (its ~/.profile read)."""
        return run(["su", "-", u, "-c", command], timeout=timeout, check=check)

    def logins(self) -> dict[str, int]:
        """The SSH logins each host's sshd has accepted so far (from its log)."""
        out = {}
        for u, port in self.ssh_ports.items():
            try:
                text = (self.tmp / f"sshd-{port}.log").read_text(errors="replace")
            except OSError:
                text = ""
            out[u] = count_logins(text, u)
        return out

    def sha_tag(self, sha: str) -> str:
        """v1, v2, or the sha's first 7 characters."""
        for tag, full in self.shas.items():
            if sha and full.startswith(sha):
                return tag
        return sha[:7] if sha else "-"

    # --- clean up
    def remove_user(self, u: str) -> None:
        if run(["id", "-u", u], check=False).returncode != 0:
            return
        for _ in range(50):
            run(["pkill", "-KILL", "-u", u], check=False)  # by uid: our throw-away users only
            if run(["pgrep", "-u", u], check=False).returncode != 0:
                break
            time.sleep(0.1)
        p = run(["userdel", "-r", "-f", u], check=False)
        if p.returncode not in (0, 12):  # 12: the home could not be removed (already gone)
            log(f"userdel {u}: {p.stderr.strip()}")

    def stop_managers(self, u: str) -> None:
        """Each manager's daemon of user u (and its apps), with its own CLI."""
        for cli in ("kelpie", "pm2"):
            if (Path("/home") / u / "bin" / cli).exists():
                try:
                    self.su(u, f"~/bin/{cli} kill", timeout=60, check=False)
                except subprocess.TimeoutExpired:
                    log(f"{u}: `{cli} kill` timed out")

    def cleanup(self) -> None:
        """Safe to run twice, and after a start that failed half-way."""
        if self.started:
            for u in self.created_users:
                self.stop_managers(u)
        self.started = False
        for port in self.ssh_ports.values():
            pid = read_pidfile(self.tmp / f"sshd-{port}.pid")
            if pid and pid_alive(pid) and "sshd" in cmdline(pid):
                os.kill(pid, signal.SIGTERM)
        for u in self.created_users:
            self.remove_user(u)
        self.created_users.clear()
        try:
            self.pm2_log.unlink()
        except OSError:
            pass
