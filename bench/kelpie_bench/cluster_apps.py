"""Cluster scenario: a Node.js HTTP hello world with 2 instances in cluster mode (the manager
shares one listening port between them), loaded with wrk: requests per second with a new
connection per request and with keep-alive, the daemon's CPU meanwhile, and the requests that
fail while `reload` replaces the instances under load. Here: its parameters and the apps'
sources."""

from __future__ import annotations


CLUSTER_APP = "hello"
CLUSTER_INSTANCES = 2
WRK_THREADS = 2
WRK_CONNECTIONS = 50
RELOAD_AT_S = 1.0     # `reload` starts this long after wrk
RELOAD_RUN_S = 6      # length of each wrk run during which the reload happens
DAEMON_CPU_MAX_PCT = 1.0  # "the daemon uses no CPU per request": at most this % of one core
BALANCE_CONNECTIONS = 16  # keep-alive balance: `wrk -c 16`, requests counted per instance
BALANCE_RUN_S = 4
BALANCE_MAX_RATIO = 1.3   # busiest instance's requests / least busy's
CLUSTER_MODES = (
    # key, title, extra wrk arguments
    ("close", "new connection per request (`Connection: close`)", ("-H", "Connection: close")),
    ("keepalive", "keep-alive", ()),
)

CLUSTER_APP_JS = r"""// Kelpie bench: an HTTP hello world on process.env.PORT, unchanged for either manager.
const http = require("http");
const port = Number(process.env.PORT);
if (!port) {
  console.error("PORT is not set");
  process.exit(1);
}
http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end("hello world\n");
}).listen(port);
"""

# The reload under load, for apps that shut down by themselves: the seed documents' SIGINT
# handler (`server.close()`, then exit), and the same in an Express app (from npm).
SEED_APP_JS = r"""// Kelpie bench: the seed documents' graceful shutdown, on process.env.PORT.
const http = require("http");
const server = http.createServer((req, res) => res.end("hello world\n"));
server.listen(Number(process.env.PORT));
process.on("SIGINT", () => server.close(() => process.exit(0)));
"""
EXPRESS_APP_JS = r"""// Kelpie bench: an Express hello world with the seed's graceful shutdown.
const app = require("express")();
app.get("/", (req, res) => res.send("hello world\n"));
const server = app.listen(Number(process.env.PORT));
process.on("SIGINT", () => server.close(() => process.exit(0)));
"""
EXPRESS_VERSION = "4.21.2"
# The bound: the same hello world run by hand, two Node processes sharing one listening socket
# (Node's cluster module with the primary only binding, SCHED_NONE: no manager, no hand-off).
BOUND_LAUNCHER_JS = r"""const cluster = require("cluster");
cluster.schedulingPolicy = cluster.SCHED_NONE;
cluster.setupPrimary({ exec: process.argv[2] });
for (let i = 0; i < Number(process.argv[3]); i++) cluster.fork();
"""
