'use strict';
// Micro-benchmarks of what the shim's HTTP metrics do per request (bench/nodemetrics, issue 50):
// Node's own publish of http.server.request.start and http.server.response.finish (a message
// object each, on a real ServerResponse) with the shim's subscribers vs none, and the parts
// (time sources, histogram.record, a symbol on the response, socket.encrypted).
//   node bench/nodemetrics/micro.js   (best of 7 runs of N iterations, ns per iteration)
const http = require('http');
const net = require('net');
const dc = require('diagnostics_channel');
const { performance, createHistogram } = require('perf_hooks');

const N = 300000;
function best(label, fn) {
  const times = [];
  for (let r = 0; r < 7; r++) {
    const t0 = process.hrtime.bigint();
    fn(N);
    times.push(Number(process.hrtime.bigint() - t0) / N);
  }
  times.sort((a, b) => a - b);
  console.log(`${label.padEnd(58)} ${times[0].toFixed(1).padStart(7)} ns  (median ${times[3].toFixed(1)})`);
  return times[0];
}

const socket = new net.Socket();
const server = http.createServer();
const req = new http.IncomingMessage(socket);
const start = dc.channel('http.server.request.start');
const finish = dc.channel('http.server.response.finish');
let sink = 0;
// What Node does per request around the subscribers (lib/_http_server.js): a response, and a
// message object per channel when it has subscribers.
function requests(n) {
  for (let i = 0; i < n; i++) {
    const res = new http.ServerResponse(req);
    if (start.hasSubscribers) start.publish({ request: req, response: res, socket, server });
    if (finish.hasSubscribers) finish.publish({ request: req, response: res, socket, server });
    sink += res.statusCode;
  }
}

function withSubscribers(label, onStart, onFinish) {
  dc.subscribe('http.server.request.start', onStart);
  dc.subscribe('http.server.response.finish', onFinish);
  const t = best(label, requests);
  dc.unsubscribe('http.server.request.start', onStart);
  dc.unsubscribe('http.server.response.finish', onFinish);
  return t;
}

const base = best('requests, no subscribers', requests);
const noop = () => {};
const t0 = withSubscribers('requests, two no-op subscribers', noop, noop);
const STARTED = Symbol('started');
const h = createHistogram();
let count = 0;
withSubscribers('current: symbol on response, performance.now, encrypted', (m) => {
  if (m.response) m.response[STARTED] = performance.now();
}, (m) => {
  const response = m.response;
  const started = response && response[STARTED];
  if (started === undefined) return;
  const enc = m.socket && m.socket.encrypted;
  count++;
  h.record(Math.max(1, Math.round((performance.now() - started) * 1e6)));
  sink += enc ? 1 : 0;
});
withSubscribers('symbol on response only', (m) => { m.response[STARTED] = 1; }, noop);
withSubscribers('performance.now() x2', () => { sink += performance.now(); }, () => { sink += performance.now(); });
withSubscribers('process.hrtime.bigint() x2', () => { sink += Number(process.hrtime.bigint() & 1n); }, () => { sink += Number(process.hrtime.bigint() & 1n); });
withSubscribers('count + record(1000)', noop, () => { count++; h.record(1000); });
withSubscribers('socket.encrypted', noop, (m) => { sink += m.socket.encrypted ? 1 : 0; });
// The request's own start time: Node stamps none on IncomingMessage in 20; a WeakMap instead of
// a property on the response.
const started = new WeakMap();
withSubscribers('WeakMap set/get', (m) => { started.set(m.response, 1); }, (m) => { sink += started.get(m.response) || 0; });
console.log(`(base ${base.toFixed(1)} ns; no-op subscribers ${(t0 - base).toFixed(1)} ns over base)`);

// The parts alone.
best('performance.now()', (n) => { for (let i = 0; i < n; i++) sink += performance.now(); });
best('process.hrtime.bigint()', (n) => { for (let i = 0; i < n; i++) sink += Number(process.hrtime.bigint() & 1n); });
best('process.hrtime()', (n) => { for (let i = 0; i < n; i++) sink += process.hrtime()[1]; });
best('histogram.record(number)', (n) => { for (let i = 0; i < n; i++) h.record(1000 + (i & 1023)); });
best('histogram.record(bigint)', (n) => { for (let i = 0; i < n; i++) h.record(1000n); });
if (sink === 42) console.log('');
