'use strict';
// What the shim's runtime metrics cost per request of a real HTTP exchange, in one process:
// a hello-world http.Server and a lean keep-alive client (32 connections over loopback, raw
// sockets, one request in flight on each) share the process, pinned to one CPU by the caller
// (`taskset -c 0 node inproc.js`). Batches of requests, the metrics started and stopped between
// batches (as preload.js does; each state in turn, the order alternating); per batch the CPU
// time of the process (process.cpuUsage) per request. On a busy machine most batches are
// slowed by what else runs; the lowest ones (best, lowest decile) are those that ran alone, as
// in a micro-benchmark, and the medians say how much the rest varies.
//   taskset -c 0 node bench/nodemetrics/inproc.js [batches=60] [requests per batch=4000]
//   KELPIE_METRICS_FILE=<another node-metrics.js>: that version; KELPIE_METRICS_WITHOUT as in
//   preload.js. Prints ns/request per state and the difference.
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');

const BATCHES = Number(process.argv[2]) || 60;
const PER_BATCH = Number(process.argv[3]) || 4000;
const CONNECTIONS = 32;

const file = process.env.KELPIE_METRICS_FILE ||
  path.join(__dirname, '..', '..', 'crates', 'kelpie-daemon', 'assets', 'node-metrics.js');
let source = fs.readFileSync(file, 'utf8');
for (const part of (process.env.KELPIE_METRICS_WITHOUT || '').split(',').filter(Boolean)) {
  const line = { http: 'const http = HttpMetrics.start(perf);', gc: 'const gc = GcMetrics.start(perf);' }[part];
  if (!line || !source.includes(line)) throw new Error(`KELPIE_METRICS_WITHOUT: ${part}: not found`);
  source = source.replace(line, line.replace(/= .*;/, '= null;'));
}
let sent = 0;
const send = (message) => { sent += JSON.stringify(message).length; };
// eslint-disable-next-line no-new-func
const start = new Function('require', 'send', `${source}\nreturn () => reportRuntimeMetrics(send);\n`)(require, send);

const server = http.createServer((req, res) => res.end('hello'));
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  let responseLength = 0;
  // The response's length (its Date header's is fixed), from one request.
  const probe = net.connect(port, '127.0.0.1', () => probe.write(request));
  let first = '';
  probe.on('data', (d) => {
    first += d;
    if (first.endsWith('hello')) {
      responseLength = Buffer.byteLength(first);
      probe.destroy();
      run(port, request, responseLength);
    }
  });
});

function run(port, request, responseLength) {
  let remaining = 0;
  let inFlight = 0;
  let done = null;
  const sockets = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    let pending = 0;
    s.on('data', (d) => {
      pending += d.length;
      while (pending >= responseLength) {
        pending -= responseLength;
        inFlight--;
        if (remaining > 0) {
          remaining--;
          inFlight++;
          s.write(request);
        } else if (inFlight === 0) {
          done();
        }
      }
    });
    sockets.push(s);
  }
  const batch = (n, cb) => {
    remaining = n;
    done = cb;
    for (const s of sockets) {
      if (remaining === 0) break;
      remaining--;
      inFlight++;
      s.write(request);
    }
  };
  const results = { on: [], off: [] };
  let stop = null;
  const order = [];
  for (let i = 0; i < BATCHES; i++) order.push(...(i % 2 === 0 ? ['on', 'off'] : ['off', 'on']));
  let i = -1;
  const next = () => {
    i++;
    if (i === order.length) return finish(results, sockets);
    const state = order[i];
    if (state === 'on' && !stop) stop = start();
    if (state === 'off' && stop) {
      stop();
      stop = null;
    }
    // A short unmeasured batch first: what the switch left (code to optimise again) settles.
    batch(PER_BATCH >> 2, () => {
      const cpu0 = process.cpuUsage();
      batch(PER_BATCH, () => {
        const cpu = process.cpuUsage(cpu0);
        results[state].push((cpu.user + cpu.system) * 1000 / PER_BATCH);
        setImmediate(next);
      });
    });
  };
  // Warm up both ways first.
  batch(PER_BATCH * 2, () => { stop = start(); batch(PER_BATCH * 2, () => { stop(); stop = null; next(); }); });
}

function finish(results, sockets) {
  for (const s of sockets) s.destroy();
  server.close();
  const q = (xs, p) => {
    const s = xs.slice().sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(p * s.length))];
  };
  const line = (name) => {
    const xs = results[name];
    return `${name}: best ${q(xs, 0).toFixed(0)}, p10 ${q(xs, 0.1).toFixed(0)}, p25 ${q(xs, 0.25).toFixed(0)}, ` +
      `median ${q(xs, 0.5).toFixed(0)} ns/request (${xs.length} batches)`;
  };
  console.log(line('off'));
  console.log(line('on'));
  // Paired: each `on` batch with the `off` batch next to it.
  const d = results.on.map((x, k) => x - results.off[k]);
  const dd = (p) => q(d, p).toFixed(0);
  console.log(`on - off: best-to-best ${(q(results.on, 0) - q(results.off, 0)).toFixed(0)}, p10-to-p10 ` +
    `${(q(results.on, 0.1) - q(results.off, 0.1)).toFixed(0)}, p25-to-p25 ${(q(results.on, 0.25) - q(results.off, 0.25)).toFixed(0)} ns; ` +
    `paired differences: quartiles ${dd(0.25)} / ${dd(0.5)} / ${dd(0.75)} ns; load ${require('os').loadavg()[0].toFixed(2)}` +
    (sent ? '' : ' (no report sent)'));
}
