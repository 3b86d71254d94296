'use strict';
// Candidate per-request subscribers, each over Node's own publish (micro.js's loop).
const http = require('http');
const net = require('net');
const dc = require('diagnostics_channel');
const { performance, createHistogram } = require('perf_hooks');
const N = 300000;
const ROUNDS = Number(process.env.ROUNDS) || 9;
const socket = new net.Socket();
const server = http.createServer();
const req = new http.IncomingMessage(socket);
const start = dc.channel('http.server.request.start');
const finish = dc.channel('http.server.response.finish');
let sink = 0;
function requests(n) {
  for (let i = 0; i < n; i++) {
    const res = new http.ServerResponse(req);
    if (start.hasSubscribers) start.publish({ request: req, response: res, socket, server });
    if (finish.hasSubscribers) finish.publish({ request: req, response: res, socket, server });
    sink += res.statusCode;
  }
}
const variants = {};
variants.none = null;
variants.noop = [() => {}, () => {}];
{
  const S = Symbol('s'); const h = createHistogram(); const w = { histogram: h, sum: 0, count: 0 };
  const st = { pending: 0, total: 0, latency: { parts: [w], get current() { return this.parts[0]; } } };
  const record = (ns) => { st.pending++; st.total++; const x = st.latency.current; x.histogram.record(ns); x.sum += ns; x.count++; };
  variants.current = [(m) => { if (m.response) m.response[STARTED_CUR] = performance.now(); },
    (m) => { const r = m.response; const s = r && r[STARTED_CUR]; if (s === undefined) return;
      const enc = m.socket && m.socket.encrypted; record(Math.max(1, Math.round((performance.now() - s) * 1e6))); sink += enc ? 1 : 0; }];
  var STARTED_CUR = S;
}
{
  const S = Symbol('s'); const h = createHistogram(); let count = 0;
  variants.lean_perfnow = [(m) => { m.response[S] = performance.now(); },
    (m) => { const s = m.response[S]; if (s === undefined) return; count++;
      h.record(Math.round((performance.now() - s) * 1e6) || 1); }];
}
{
  const S = Symbol('s'); const h = createHistogram(); let count = 0; const hr = process.hrtime;
  variants.lean_hrtime_array = [(m) => { const t = hr(); m.response[S] = t[0] * 1e9 + t[1]; },
    (m) => { const s = m.response[S]; if (s === undefined) return; count++; const t = hr();
      h.record((t[0] * 1e9 + t[1] - s) || 1); }];
}
{
  const S = Symbol('s'); const h = createHistogram(); let count = 0; const big = process.hrtime.bigint;
  variants.lean_bigint = [(m) => { m.response[S] = big(); },
    (m) => { const s = m.response[S]; if (s === undefined) return; count++;
      h.record(big() - s); }];
}
{
  const S = Symbol('s'); let count = 0; const b = new Float64Array(256);
  variants.lean_js_buckets = [(m) => { m.response[S] = performance.now(); },
    (m) => { const s = m.response[S]; if (s === undefined) return; count++;
      const us = ((performance.now() - s) * 1000) | 0; const z = 31 - Math.clz32(us | 1);
      b[(z << 3) | ((us >>> Math.max(0, z - 3)) & 7)]++; }];
}
{
  const S = Symbol('s'); const h = createHistogram(); let count = 0;
  variants.lean_perfnow_encrypted = [(m) => { m.response[S] = performance.now(); },
    (m) => { const s = m.response[S]; if (s === undefined) return; count++;
      const ns = Math.round((performance.now() - s) * 1e6) || 1; if (m.socket.encrypted) sink++; h.record(ns); }];
}
// The shim's own subscribers (HttpMetrics of node-metrics.js, or of the file SHIM_FILE names).
{
  const file = process.env.SHIM_FILE || require('path').join(__dirname, '..', '..', 'crates', 'kelpie-daemon', 'assets', 'node-metrics.js');
  const HttpMetrics = new Function('require', `${require('fs').readFileSync(file, 'utf8')}\nreturn HttpMetrics;`)(require);
  const m = new HttpMetrics(require('perf_hooks'), dc);
  variants.shim = [m.onStart, m.onFinish];
  // As at 16 000 requests a second (the hello-world server's rate under wrk here): the report
  // before sets the stride to time one request in 32.
  const busy = new HttpMetrics(require('perf_hooks'), dc);
  busy.stride = 32;
  busy.countdown = 32;
  variants.shim_at_16k = [busy.onStart, busy.onFinish];
}
const which = process.argv[2];
const v = variants[which];
if (v === undefined) throw new Error(`variants: ${Object.keys(variants).join(' ')}`);
if (v) { dc.subscribe('http.server.request.start', v[0]); dc.subscribe('http.server.response.finish', v[1]); }
requests(N); // warm up
const t = [];
for (let r = 0; r < ROUNDS; r++) {
  const t0 = process.hrtime.bigint(); requests(N); t.push(Number(process.hrtime.bigint() - t0) / N);
}
t.sort((x, y) => x - y);
console.log(`${which} ${t[0].toFixed(1)} ${t[t.length >> 1].toFixed(1)}`);
if (sink === 1) console.log();
