// Kelpie's shim for Bun and Deno apps, preloaded before the app's main module (`bun --preload
// <this file>`, `deno run --preload <this file's URL>`). What the Node shim does for Node apps,
// with what each runtime offers:
//   - cluster mode (Bun takes its settings from KELPIE_SHARE_PORTS and KELPIE_KILL_SIGNAL;
//     Deno, which needs a permission to read the environment, from this file's URL query):
//     every listen on a TCP port other than 0 (`Bun.serve`, `Deno.serve`, `server.listen()` of
//     node:http, express, hono...) binds with SO_REUSEPORT, so the instances share the port.
//     Neither runtime serves a socket it is given (Bun ignores a descriptor; Deno serves one
//     only through node:http), so Kelpie owns none for them: the kernel spreads connections,
//     and moves those queued at a stopping instance to the others (tcp_migrate_req);
//   - it says {"kelpie":"listening"} over the IPC channel once such a server listens
//     (readiness, as PM2's cluster `listening`);
//   - on the stop signal, with no handler of the app's, it answers with `Connection: close`
//     for a second (keep-alive clients reconnect elsewhere), then closes the servers, lets the
//     requests in flight finish and exits; with one, it closes them at once (they stop
//     accepting) and leaves the exit to the app;
//   - runtime metrics under @pm2/io's names (heap, event loop latency, HTTP requests and
//     latency of Bun.serve and Deno.serve) in one `axm:monitor` message a second, from an
//     unref'd timer; what the runtime cannot say is not sent;
//   - each uncaught exception, as {type: 'process:exception'} (the exception inbox).
// `pmx: false` (KELPIE_NODE_METRICS=0, or `metrics=0` in the query) turns the metrics off.
// It never throws at load, and does nothing without an IPC channel but share ports.

const runtime = globalThis.Deno ? 'deno' : 'bun';
const METRICS_MS = 990;
const LATENCY_SAMPLES = 60; // drift samples kept: the last minute
const RATE_MS = 60000; // HTTP: requests counted over the last minute
const HALF_MS = 30000; // latency windows: two halves, figures cover the last 30-60 s
const TIMED_PER_REPORT = 500; // HTTP requests timed per report (all of them below 500 a second)

function settings() {
  if (runtime === 'deno') {
    const query = new URL(import.meta.url).searchParams;
    return {
      share: query.get('share') === '1',
      kill: query.get('kill') || 'SIGINT',
      metrics: query.get('metrics') !== '0',
    };
  }
  const env = process.env;
  return {
    share: env.KELPIE_SHARE_PORTS === '1',
    kill: env.KELPIE_KILL_SIGNAL || 'SIGINT',
    metrics: env.KELPIE_NODE_METRICS !== '0',
  };
}

const config = settings();
const canTell = () => typeof process.send === 'function' && process.connected !== false;
function tell(message) {
  try {
    if (canTell()) process.send(message);
  } catch (_) {}
}

// --- shared servers ----------------------------------------------------------------------

const shared = new Set(); // { stop(): Promise, draining: bool }
let stopping = false;

// A TCP listen to share: a port other than 0 (`Bun.serve` without one takes PORT or 3000,
// `Deno.serve` 8000), not a Unix socket.
function sharesPort(options) {
  if (!options || typeof options !== 'object') return true;
  if (options.unix || options.path) return false;
  return options.port === undefined || Number(options.port) !== 0;
}

function listening(port) {
  tell({ kelpie: 'listening', address: { port } });
}

// A fetch handler that counts requests and, once the instance stops, answers with
// `Connection: close` so that keep-alive clients reconnect to another instance.
function wrapFetch(fetch, owner) {
  if (typeof fetch !== 'function') return fetch;
  // Not an async function: a handler that answers at once costs no promise more. Under Deno,
  // of the handler's own arity: Deno builds no Request for a handler that takes no argument
  // (and calls it with none: the same for the handler either way).
  if (runtime === 'deno' && fetch.length === 0) {
    return function kelpieFetch() {
      const start = http.timing() ? performance.now() : -1;
      return answered(fetch.call(this), start, owner);
    };
  }
  return function kelpieFetch(request, server) {
    const start = http.timing() ? performance.now() : -1;
    return answered(fetch.call(this, request, server), start, owner);
  };
}

// What a wrapped handler returns (a response, or a promise of one): counted, timed, and told
// to close its connection once the instance stops.
function answered(result, start, owner) {
  const finish = (response) => {
    http.answered(start);
    if (owner.draining && response instanceof Response) {
      try {
        response.headers.set('Connection', 'close');
      } catch (_) {}
    }
    return response;
  };
  if (result && typeof result.then === 'function') return result.then(finish);
  return finish(result);
}

function patchBun() {
  const original = Bun.serve;
  Bun.serve = function serve(options, ...rest) {
    const owner = { draining: false, server: null };
    const share = config.share && sharesPort(options);
    let given = options;
    if (options && typeof options === 'object') {
      given = { ...options, fetch: wrapFetch(options.fetch, owner) };
      if (share) given.reusePort = true;
    }
    const server = original.call(this, given, ...rest);
    if (share) {
      owner.server = server;
      owner.stop = () => {
        owner.draining = true;
        return server.stop(false);
      };
      shared.add(owner);
      queueMicrotask(() => listening(server.port));
    }
    return server;
  };
}

function patchDeno() {
  const original = Deno.serve;
  Deno.serve = function serve(first, second) {
    let options = typeof first === 'function' ? {} : first || {};
    let handler = typeof first === 'function' ? first : second;
    const owner = { draining: false, server: null };
    const share = config.share && sharesPort(options);
    options = { ...options };
    if (share) options.reusePort = true;
    if (typeof options.handler === 'function') options.handler = wrapFetch(options.handler, owner);
    if (typeof handler === 'function') handler = wrapFetch(handler, owner);
    if (share) {
      const onListen = options.onListen;
      options.onListen = function (address) {
        listening(address && address.port);
        if (typeof onListen === 'function') return onListen.call(this, address);
        // Deno's own line, which an app without onListen prints.
        console.error(`Listening on http://${address.hostname === '0.0.0.0' ? 'localhost' : address.hostname}:${address.port}/`);
      };
    }
    const server = handler ? original.call(this, options, handler) : original.call(this, options);
    if (share) {
      owner.server = server;
      // Deno.serve cannot close its listener alone: shutdown() closes it, answers what is in
      // flight, and closes every connection with no request under way, including one
      // accepted an instant before whose request was not read yet (docs/cluster.md).
      owner.stop = () => {
        owner.draining = true;
        return server.shutdown();
      };
      shared.add(owner);
    }
    return server;
  };
}

// node:http and node:net servers (express, hono's node adapter...). Under Bun they are made
// with Bun.serve (patched above); under Deno they are not.
async function patchNodeListen() {
  const net = await import('node:net');
  const Server = net.default.Server;
  const original = Server.prototype.listen;
  Server.prototype.listen = function listen(...args) {
    const first = args[0];
    let options = null;
    if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      options = { port: Number(first) };
      let rest = args.slice(1);
      if (typeof rest[0] === 'string') options.host = rest.shift();
      if (typeof rest[0] === 'number') options.backlog = rest.shift();
      args = [options, ...rest];
    } else if (first && typeof first === 'object' && first.port !== undefined) {
      options = { ...first };
      args = [options, ...args.slice(1)];
    }
    if (options && Number(options.port) !== 0 && !options.exclusive) {
      options.reusePort = true;
      const server = this;
      const owner = {
        draining: false,
        stop: () =>
          new Promise((done) => {
            owner.draining = true;
            server.close(() => done());
            if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
          }),
      };
      shared.add(owner);
      this.once('listening', () => {
        const address = this.address();
        listening(address && address.port);
      });
    }
    return original.apply(this, args);
  };
}

// --- the stop signal ----------------------------------------------------------------------

// The app's own handlers for the stop signal, under Deno: Deno.addSignalListener sees them all
// (its `process.on` goes through it). The shim's own handler is added with the original.
let appSignalHandlers = 0;
let addDenoSignalListener = null;

function watchDenoSignalListeners() {
  const add = Deno.addSignalListener;
  addDenoSignalListener = add;
  const remove = Deno.removeSignalListener;
  Deno.addSignalListener = function (signal, handler) {
    if (signal === config.kill) appSignalHandlers += 1;
    return add.call(this, signal, handler);
  };
  Deno.removeSignalListener = function (signal, handler) {
    if (signal === config.kill) appSignalHandlers = Math.max(0, appSignalHandlers - 1);
    return remove.call(this, signal, handler);
  };
}

// How long a stopping instance answers with `Connection: close` before it closes its
// listeners. Neither runtime can stop accepting without closing its idle keep-alive
// connections too, which races with a client sending its next request on one; in this grace
// every busy keep-alive client is told to reconnect (to another instance) instead.
const CLOSE_GRACE_MS = 1000;

function onStop() {
  if (stopping) return;
  stopping = true;
  for (const owner of shared) owner.draining = true;
  const appHandlers =
    runtime === 'deno' ? appSignalHandlers : process.listenerCount(config.kill) - 1;
  if (appHandlers > 0) {
    // The app decides when to exit: stop accepting now, before its handler has run.
    for (const owner of shared) owner.stop();
    return;
  }
  const timer = setTimeout(() => {
    Promise.allSettled([...shared].map((owner) => owner.stop())).then(() => process.exit(0));
  }, shared.size ? CLOSE_GRACE_MS : 0);
  if (timer && typeof timer.ref === 'function') timer.ref();
}

// --- runtime metrics ----------------------------------------------------------------------

// HTTP requests of the last minute (counted per report, kept with the report's time) and their
// latency over the last 30-60 s, in two halves: at most TIMED_PER_REPORT requests timed per
// report (a second), so a busy server pays a counter per request and no clock.
const http = {
  total: 0,
  sinceReport: 0, // requests answered since the last report
  timed: 0, // of those, how many were timed
  minute: [], // [report time, requests] of the reports of the last minute
  halves: [[], []],
  half: 0,
  halfSince: 0,
  timing() {
    return this.timed < TIMED_PER_REPORT;
  },
  answered(start) {
    this.total += 1;
    this.sinceReport += 1;
    if (start < 0) return;
    this.timed += 1;
    this.halves[this.half].push(performance.now() - start);
  },
  report(now, data) {
    if (now - this.halfSince > HALF_MS) {
      this.half = 1 - this.half;
      this.halves[this.half] = [];
      this.halfSince = now;
    }
    this.minute.push([now, this.sinceReport]);
    this.sinceReport = 0;
    this.timed = 0;
    while (this.minute.length && now - this.minute[0][0] > RATE_MS) this.minute.shift();
    if (this.total === 0) return;
    const perMinute = this.minute.reduce((sum, [, n]) => sum + n, 0);
    const timed = this.halves[0].concat(this.halves[1]).sort((a, b) => a - b);
    const mean = timed.length ? timed.reduce((a, b) => a + b, 0) / timed.length : 0;
    const p95 = timed.length ? timed[Math.min(timed.length - 1, Math.floor(timed.length * 0.95))] : 0;
    data.HTTP = { ...metric(perMinute, 'internal/http/builtin/reqs', 'req/min'), total: this.total };
    data['HTTP Mean Latency'] = metric(mean.toFixed(2), 'internal/http/builtin/latency/p50', 'ms');
    data['HTTP P95 Latency'] = metric(p95.toFixed(2), 'internal/http/builtin/latency/p95', 'ms');
  },
};

function metric(value, type, unit) {
  return unit ? { value, unit, type, historic: true } : { value, type, historic: true };
}

function reportMetrics() {
  if (!canTell() || !config.metrics) return;
  const drifts = [];
  let due = 0;
  const report = () => {
    const now = performance.now();
    drifts.push(Math.max(0, now - due));
    if (drifts.length > LATENCY_SAMPLES) drifts.shift();
    if (globalThis[Symbol.for('@pm2/io')]) return; // the app's own agent reports
    const data = {};
    const memory = process.memoryUsage();
    const mib = (bytes) => (bytes / 1048576).toFixed(2);
    data['Heap Size'] = metric(mib(memory.heapTotal), 'internal/v8/heap/total', 'MiB');
    data['Used Heap Size'] = metric(mib(memory.heapUsed), 'internal/v8/heap/used', 'MiB');
    data['Heap Usage'] = metric(Math.round((memory.heapUsed / memory.heapTotal) * 10000) / 100, 'internal/v8/heap/usage', '%');
    const sorted = drifts.slice().sort((a, b) => a - b);
    const at = (p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
    data['Event Loop Latency'] = metric(at(0.5).toFixed(2), 'internal/libuv/latency/p50', 'ms');
    data['Event Loop Latency p95'] = metric(at(0.95).toFixed(2), 'internal/libuv/latency/p95', 'ms');
    http.report(now, data);
    tell({ type: 'axm:monitor', data });
    schedule();
  };
  const schedule = () => {
    due = performance.now() + METRICS_MS;
    const timer = setTimeout(report, METRICS_MS);
    if (timer && typeof timer.unref === 'function') timer.unref();
    else if (runtime === 'deno') Deno.unrefTimer(timer);
  };
  schedule();
}

// --- what PM2's process container says of every app ----------------------------------------

function exceptionData(err) {
  if (!(err instanceof Error)) {
    let text;
    try {
      text = JSON.stringify(err);
    } catch (_) {
      text = String(err);
    }
    return { message: `Non-error value: ${text}`, stack: `Non-error value: ${text}` };
  }
  const data = { message: err.message, stack: err.stack, name: err.name };
  for (const key of Object.getOwnPropertyNames(err)) {
    if (key in data) continue;
    const value = err[key];
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) data[key] = value;
  }
  return data;
}

function reportToTheManager() {
  if (!canTell()) return;
  process.on('uncaughtExceptionMonitor', (err) => {
    if (globalThis[Symbol.for('@pm2/io')]) return;
    tell({ type: 'process:exception', data: exceptionData(err) });
  });
}

// --- start --------------------------------------------------------------------------------

try {
  if (runtime === 'deno') {
    patchDeno();
    watchDenoSignalListeners();
  } else {
    patchBun();
  }
  if (config.share) {
    if (runtime === 'deno') await patchNodeListen();
    if (runtime === 'deno') addDenoSignalListener.call(Deno, config.kill, onStop);
    else process.on(config.kill, onStop);
  }
  reportToTheManager();
  reportMetrics();
} catch (err) {
  // A broken shim must never take the app down: carry on as if it were not there.
  try {
    console.error(`kelpie shim disabled: ${err && err.message}`);
  } catch (_) {}
}
