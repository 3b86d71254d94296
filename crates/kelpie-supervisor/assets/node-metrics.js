'use strict';
// Kelpie's Node shim, first part: the runtime metrics (launch.rs puts this file before
// node-shim.js, which starts them; declarations only here, nothing runs at load).
//
// PM2's agent gives every Node app runtime metrics; the shim does the same for an app without
// @pm2/io (which sends them itself: the shim stops for good once it sees it), with @pm2/io's
// names, units and type ids, in one `axm:monitor` message every METRICS_MS (IDLE_METRICS_MS
// while the app idles) from one unref'd timer: nothing here wakes an idle app more often, or
// keeps it alive. What it sends (the
// contract the daemon's views and /metrics read; docs/observability.md lists it):
//   - heap (Heap Size, Used Heap Size, Heap Usage) and libuv's active handles and requests;
//   - Event Loop Utilization (%, over the last report window);
//   - Event Loop Latency (+ p95): while the app is busy, from monitorEventLoopDelay at 10 ms,
//     weighted by time (see DelayWindow); otherwise how late the report timer fired;
//   - HTTP / HTTPS (requests in the last 60 s, and the total), their mean and p95 latency, from
//     diagnostics_channel (no wrapping of the server), after the first request; per request: a
//     count, and a sample of the requests timed (all of them below TIMED_PER_S a second);
//   - GC New / Old Space Pause (+ p95) from a PerformanceObserver reading every entry of each
//     batch, with cumulative histogram counts for /metrics, after the first collection.

const METRICS_MS = 990;
// While the app idles (its loop under ELD_QUIET_ELU busy, no request, no delay monitor), the
// report comes at half that rate: its figures barely move then, and each report costs an idle
// app as much as everything else it does (about 0.4 ms of CPU on a cold cache, interpreted).
// The first report that sees the app busy goes back to METRICS_MS.
const IDLE_METRICS_MS = 2 * METRICS_MS;
const LATENCY_SAMPLES = 60; // drift samples kept: the last minute
const RATE_MS = 60000; // HTTP: requests counted over the last minute (a true req/min)
const HALF_MS = 30000; // latency windows: two halves, so figures cover the last 30-60 s
const GC_BUCKETS = [0.001, 0.01, 0.1, 1, 2, 5]; // seconds: prom-client's nodejs_gc_duration_seconds
// The event-loop delay monitor wakes the loop every ELD_RESOLUTION_MS: 100 wake-ups/s would
// cost every idle app more than all its other metrics together, so it runs only while the app
// is busy (utilisation or drift above these) and stops after ELD_QUIET_MS quiet.
const ELD_RESOLUTION_MS = 10;
const ELD_ARM_ELU = 0.02;
// Busy means the loop ran (utilisation) and the process used CPU time for it: on a busy machine
// an idle app's timer fires 20 ms late for want of a CPU (drift), or its report is preempted
// midway (utilisation counts that wait as the loop's), and either armed the monitor (100
// wake-ups/s for 10 s) in one idle app in two (50 idle apps, load 10 on 2 CPUs); CPU time
// counts neither. A loop blocked without CPU (a synchronous wait) keeps the drift figure.
// Drift alone where Node has no utilisation (before 14.10).
const ELD_ARM_CPU = 0.01;
const ELD_ARM_DRIFT_MS = 20;
const ELD_QUIET_ELU = 0.01;
const ELD_QUIET_MS = 10000;
const ELD_MIN_SAMPLES = 5; // fewer: the drift figure (as OpenTelemetry's instrumentation does)
// HTTP latency is timed on every request while fewer than TIMED_PER_S come a second, else on
// one in `stride` (a power of two, set at each report from the last window's rate): enough
// for the mean and p95 of the last 30-60 s, for a few ns a request. Every request is counted.
const TIMED_PER_S = 500;
const TIMED_SLOTS = 16; // requests being timed at once, at most

function reportRuntimeMetrics(send) {
  const perf = require('perf_hooks');
  const v8 = require('v8');
  const loop = new LoopMetrics(perf);
  const http = HttpMetrics.start(perf);
  const gc = GcMetrics.start(perf);
  const clock = perf.performance;
  let last = clock.now(); // the last report
  let due = 0; // when the timer should fire (ms)
  const count = (name) => {
    const list = typeof process[name] === 'function' ? process[name]() : null;
    return Array.isArray(list) ? list.length : 0;
  };
  let timer = null;
  // Everything stops: nothing left running, no cost left behind.
  const stop = () => {
    clearTimeout(timer);
    timer = null;
    loop.stop();
    if (http) http.stop();
    if (gc) gc.stop();
  };
  const report = () => {
    const now = clock.now();
    const drift = Math.max(0, now - due);
    // The app's own agent reports these: no double reporting.
    if (global[Symbol.for('@pm2/io')]) return stop();
    loop.tick(now, drift);
    const heap = v8.getHeapStatistics();
    const mib = (bytes) => (bytes / 1048576).toFixed(2);
    const data = {
      'Heap Size': metric(mib(heap.total_heap_size), 'internal/v8/heap/total', 'MiB'),
      'Used Heap Size': metric(mib(heap.used_heap_size), 'internal/v8/heap/used', 'MiB'),
      'Heap Usage': metric(round(heap.used_heap_size / heap.total_heap_size * 100, 2), 'internal/v8/heap/usage', '%'),
      'Event Loop Utilization': metric(round(loop.utilization * 100, 2), 'internal/libuv/utilization', '%'),
    };
    const latency = loop.latency();
    data['Event Loop Latency'] = metric(latency.p50.toFixed(2), 'internal/libuv/latency/p50', 'ms');
    data['Event Loop Latency p95'] = metric(latency.p95.toFixed(2), 'internal/libuv/latency/p95', 'ms');
    data['Active handles'] = metric(count('_getActiveHandles'), 'internal/libuv/handles');
    data['Active requests'] = metric(count('_getActiveRequests'), 'internal/libuv/requests');
    const requests = http ? http.report(now, data, now - last) : 0;
    if (gc) gc.report(now, data);
    last = now;
    send({ type: 'axm:monitor', data });
    schedule(requests === 0 && loop.idle() ? IDLE_METRICS_MS : METRICS_MS);
  };
  // One unref'd timer at a time, set again after each report.
  const schedule = (ms) => {
    due = clock.now() + ms;
    timer = setTimeout(report, ms);
    timer.unref();
  };
  schedule(METRICS_MS);
  return stop;
}

// What PM2's agent says of itself in `axm_options` (`axm:option:configuration`, once at start):
// its module name is the app's name (PM2 sets `name` in every app's environment; so does
// Kelpie), and which metrics it gathers.
function reportAgentOptions(send) {
  send({
    type: 'axm:option:configuration',
    data: {
      error: true,
      catchExceptions: true,
      metrics: { v8: true, network: false, eventLoop: true, runtime: true, http: true },
      standalone: false,
      module_conf: {},
      apm: { type: 'node' },
      module_name: process.env.name || 'outside-pm2',
    },
  });
}

function metric(value, type, unit) {
  return unit ? { value, unit, type, historic: true } : { value, type, historic: true };
}

function round(value, decimals) {
  const scale = 10 ** decimals;
  return Math.round(value * scale) / scale;
}

// Two alternating windows of HALF_MS: what is recorded goes to the newer, and figures are read
// over both (the last 30 to 60 s) without a timer: `rotate` runs at each report.
class Halves {
  constructor(make, now) {
    this.parts = [make(), make()];
    this.since = now;
  }

  get current() {
    return this.parts[0];
  }

  // Whether the windows moved (the figures read over both then change).
  rotate(now) {
    if (now - this.since < HALF_MS) return false;
    this.parts.reverse();
    this.parts[0].reset();
    this.since = now;
    return true;
  }
}

// Event-loop utilisation, and delay: the report timer's drift while the app idles, the
// delay monitor while it is busy.
class LoopMetrics {
  constructor(perf) {
    this.perf = perf;
    this.elu = typeof perf.performance.eventLoopUtilization === 'function' ? perf.performance.eventLoopUtilization() : null;
    this.utilization = 0;
    this.cpu = typeof process.cpuUsage === 'function' ? process.cpuUsage() : null; // µs
    this.cpuShare = 0; // of the last window
    this.at = perf.performance.now();
    this.drift = new Float64Array(LATENCY_SAMPLES); // a ring of the last drifts (ms)
    this.drifts = 0; // how many were taken
    this.sorted = new Float64Array(LATENCY_SAMPLES); // where they are sorted to be read
    this.eld = null; // the monitor, while armed
    this.quietSince = null;
    this.delays = null; // Halves of DelayWindow, while armed
  }

  tick(now, drift) {
    this.drift[this.drifts % LATENCY_SAMPLES] = drift;
    this.drifts++;
    if (this.elu) {
      const elu = this.perf.performance.eventLoopUtilization();
      this.utilization = this.perf.performance.eventLoopUtilization(elu, this.elu).utilization;
      this.elu = elu;
    }
    if (this.cpu) {
      const cpu = process.cpuUsage();
      const used = cpu.user - this.cpu.user + cpu.system - this.cpu.system;
      this.cpuShare = now > this.at ? used / 1000 / (now - this.at) : 0;
      this.cpu = cpu;
    }
    this.at = now;
    if (!this.eld) {
      // Not on the first report: its window holds the app's start (loading its modules),
      // which would arm the monitor, and its 100 wake-ups/s, in every app for 10 s.
      const busy = this.elu
        ? this.utilization >= ELD_ARM_ELU && (!this.cpu || this.cpuShare >= ELD_ARM_CPU)
        : drift >= ELD_ARM_DRIFT_MS;
      if (busy && this.drifts > 1) this.arm(now);
      return;
    }
    this.delays.rotate(now);
    this.delays.current.take(this.eld);
    this.eld.reset();
    if (this.utilization >= ELD_QUIET_ELU) this.quietSince = null;
    else if (this.quietSince === null) this.quietSince = now;
    else if (now - this.quietSince >= ELD_QUIET_MS) this.stop();
  }

  // Whether the last window saw the loop idle (unknown without utilisation: not idle).
  idle() {
    return this.elu !== null && this.eld === null && this.utilization < ELD_QUIET_ELU;
  }

  arm(now) {
    if (typeof this.perf.monitorEventLoopDelay !== 'function') return;
    this.eld = this.perf.monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
    this.eld.enable();
    this.delays = new Halves(() => new DelayWindow(), now);
    this.quietSince = null;
  }

  stop() {
    if (this.eld) this.eld.disable();
    this.eld = null;
    this.delays = null;
  }

  // p50 and p95 in ms: the monitor's when it has enough samples, else the drift's.
  latency() {
    if (this.delays) {
      const [a, b] = this.delays.parts;
      if (a.samples + b.samples >= ELD_MIN_SAMPLES) {
        return { p50: DelayWindow.percentile(a, b, 0.5), p95: DelayWindow.percentile(a, b, 0.95) };
      }
    }
    // A typed array sorts numerically in native code: no comparator called from the interpreter
    // (the report runs once a second, never long enough to be compiled).
    const n = Math.min(this.drifts, LATENCY_SAMPLES);
    this.sorted.set(this.drift);
    const sorted = this.sorted.subarray(0, n).sort();
    const at = (p) => (n ? sorted[Math.min(n - 1, Math.floor(p * n))] : 0);
    return { p50: at(0.5), p95: at(0.95) };
  }
}

// The delay monitor's samples, weighted by time. Each sample is one turn of its 10 ms timer:
// an app blocking 200 ms every 2 s gives one 210 ms sample among 180 of 10 ms, so a plain
// percentile says 0 ms where the loop was stuck 10 % of the time. Weighted by the time each
// covers, p95 is the delay the loop was under for 5 % of the time (200 ms here). Delay is a
// turn's length less the resolution, as the drift is the timer's lateness. Kept in log buckets
// (10 % wide) so two windows add up; read from the monitor's percentile points once a report.
const DELAY_BUCKETS = 128;
const DELAY_FIRST_MS = 0.5;
const DELAY_RATIO = Math.log(1.1);
class DelayWindow {
  constructor() {
    this.time = new Float64Array(DELAY_BUCKETS); // ms of loop time spent in turns of each delay
    this.samples = 0;
  }

  reset() {
    this.time.fill(0);
    this.samples = 0;
  }

  static bucket(delayMs) {
    if (delayMs <= DELAY_FIRST_MS) return 0;
    return Math.min(DELAY_BUCKETS - 1, 1 + Math.floor(Math.log(delayMs / DELAY_FIRST_MS) / DELAY_RATIO));
  }

  static upper(bucket) {
    return bucket === 0 ? 0 : DELAY_FIRST_MS * Math.exp(bucket * DELAY_RATIO);
  }

  // Adds a monitor's samples: its percentile points (p, value) say that the share of samples
  // between the previous point and this one had values up to `value`.
  take(eld) {
    const count = typeof eld.count === 'number' ? eld.count : 0;
    if (count === 0) return;
    let previous = 0;
    for (const [p, ns] of eld.percentiles) {
      const share = (p - previous) / 100;
      previous = p;
      if (share <= 0) continue;
      const turnMs = ns / 1e6;
      this.time[DelayWindow.bucket(turnMs - ELD_RESOLUTION_MS)] += share * count * turnMs;
    }
    this.samples += count;
  }

  // The delay under which the loop spent `p` of the time, over both windows.
  static percentile(a, b, p) {
    let total = 0;
    for (let i = 0; i < DELAY_BUCKETS; i++) total += a.time[i] + b.time[i];
    if (total <= 0) return 0;
    let sum = 0;
    for (let i = 0; i < DELAY_BUCKETS; i++) {
      sum += a.time[i] + b.time[i];
      if (sum >= p * total) return DelayWindow.upper(i);
    }
    return DelayWindow.upper(DELAY_BUCKETS - 1);
  }
}

// One server kind's requests (HTTP or HTTPS): per request a count (`pending`, which the
// report adds up); per timed request a bucket.
class RequestStats {
  constructor(now) {
    this.total = 0;
    // [{at, n}]: requests finished in each report window of the last minute that had some,
    // and their sum: an idle server's report adds and walks nothing.
    this.ticks = [];
    this.perMinute = 0;
    this.pending = 0; // finished since the last report
    this.latency = new Halves(() => new Spread(), now);
    this.latest = null; // the latency figures, until a request is timed or the windows move
  }

  record(us) {
    this.latency.parts[0].record(us);
    this.latest = null;
  }

  // Returns the requests finished since the last report.
  report(now, data, name, kind) {
    const finished = this.pending;
    this.pending = 0;
    this.total += finished;
    if (finished > 0) {
      this.ticks.push({ at: now, n: finished });
      this.perMinute += finished;
    }
    while (this.ticks.length && now - this.ticks[0].at >= RATE_MS) this.perMinute -= this.ticks.shift().n;
    if (this.latency.rotate(now)) this.latest = null;
    if (this.total === 0) return finished; // PM2's keys appear with the first request
    if (this.latest === null) {
      const [a, b] = this.latency.parts;
      const count = a.count + b.count;
      const ms = (us) => round(us / 1000, 2);
      this.latest = {
        mean: count ? ms((a.sum + b.sum) / count) : 0,
        p95: count ? ms(Spread.percentile(a, b, 0.95)) : 0,
      };
    }
    data[name] = Object.assign(metric(this.perMinute, `internal/${kind}/builtin/reqs`, 'req/min'), { total: this.total });
    data[`${name} Mean Latency`] = metric(this.latest.mean, `internal/${kind}/builtin/latency/p50`, 'ms');
    data[`${name} P95 Latency`] = metric(this.latest.p95, `internal/${kind}/builtin/latency/p95`, 'ms');
    return finished;
  }
}

// Durations in µs, counted in buckets a sixteenth of an octave wide (exact below 32 µs; a
// figure is read at its bucket's middle, within 3.2 %), with their exact sum for the mean.
// Not perf_hooks' histogram: its record() costs a native call and argument checks per request
// (measured ~60 ns of the ~100), and one covering the same range at its default 3 figures is
// 360 KB, which each report's reset and merge walked (tens of µs, and +0.3 MB RSS each).
// Here: a few integer operations per sample, nothing allocated, 3.5 KB a window.
const SPREAD_OCTAVES = 27; // up to 2^31 µs (36 minutes); longer ones count in the last bucket
const SPREAD_BUCKETS = 16 * (SPREAD_OCTAVES + 1);
class Spread {
  constructor() {
    this.counts = new Float64Array(SPREAD_BUCKETS);
    this.count = 0;
    this.sum = 0; // µs
  }

  reset() {
    if (this.count === 0) return;
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
  }

  record(us) {
    const v = us < 2147483647 ? us | 0 : 2147483647;
    if (v < 32) {
      this.counts[v]++;
    } else {
      const octave = 31 - Math.clz32(v); // >= 5
      this.counts[((octave - 3) << 4) | ((v >>> (octave - 4)) & 15)]++;
    }
    this.count++;
    this.sum += us;
  }

  // The middle of bucket i, in µs.
  static middle(i) {
    if (i < 32) return i + 0.5;
    const shift = (i >> 4) - 1; // the bucket's width is 2^shift
    return ((16 + (i & 15)) << shift) + (1 << shift) / 2;
  }

  // The value under which `p` of the samples of both windows fall.
  static percentile(a, b, p) {
    const rank = Math.max(1, Math.ceil(p * (a.count + b.count)));
    let seen = 0;
    for (let i = 0; i < SPREAD_BUCKETS; i++) {
      seen += a.counts[i] + b.counts[i];
      if (seen >= rank) return Spread.middle(i);
    }
    return Spread.middle(SPREAD_BUCKETS - 1);
  }
}

// HTTP and HTTPS servers' requests, from the channels Node publishes on (Node >= 18.6 and
// 16.18; https servers publish on the same ones: `socket.encrypted` tells them apart). Per
// request: a count, and a countdown to the next request to time. A timed request (one in
// `stride`) takes a slot: its response and when it started (performance.now(): a plain
// number); its finish, found among the slots in use, gives its time. Nothing is allocated or
// stored on Node's objects (a property added to every response costs a map transition and,
// past the object's spare fields, a properties array); the clock is read twice per timed
// request only (bench/nodemetrics measures it).
class HttpMetrics {
  static start(perf) {
    let dc;
    try {
      dc = require('diagnostics_channel');
    } catch (_) {
      return null;
    }
    if (typeof dc.subscribe !== 'function') return null;
    const metrics = new HttpMetrics(perf, dc);
    dc.subscribe('http.server.request.start', metrics.onStart);
    dc.subscribe('http.server.response.finish', metrics.onFinish);
    return metrics;
  }

  constructor(perf, dc) {
    const now = perf.performance.now();
    this.dc = dc;
    this.http = new RequestStats(now);
    this.https = new RequestStats(now);
    this.stride = 1; // time one request in `stride`
    this.countdown = 1; // requests to start before the next one timed
    this.slots = new Array(TIMED_SLOTS).fill(null); // responses being timed
    this.startedAt = new Float64Array(TIMED_SLOTS); // when each started (ms)
    this.used = 0; // slots in use
    this.end = 0; // slots below this index may be in use
    const clock = perf.performance;
    this.onStart = (message) => {
      if (--this.countdown !== 0) return;
      if (this.used === TIMED_SLOTS) {
        this.countdown = 1; // all taken (long requests): time the next one that can be
        return;
      }
      this.countdown = this.stride;
      const response = message.response;
      if (!response) return;
      let i = 0;
      while (this.slots[i] !== null) i++;
      this.slots[i] = response;
      this.startedAt[i] = clock.now();
      this.used++;
      if (i >= this.end) this.end = i + 1;
    };
    this.onFinish = (message) => {
      const socket = message.socket;
      const stats = socket && socket.encrypted ? this.https : this.http;
      stats.pending++;
      if (this.used === 0) return;
      const response = message.response;
      for (let i = 0; i < this.end; i++) {
        if (this.slots[i] !== response) continue;
        stats.record((clock.now() - this.startedAt[i]) * 1000);
        this.free(i);
        return;
      }
    };
  }

  free(i) {
    this.slots[i] = null;
    this.used--;
    while (this.end > 0 && this.slots[this.end - 1] === null) this.end--;
  }

  // Returns the requests finished since the last report.
  report(now, data, elapsedMs) {
    const finished = this.http.report(now, data, 'HTTP', 'http') + this.https.report(now, data, 'HTTPS', 'https');
    // The next window times about TIMED_PER_S requests a second at this one's rate.
    const perSecond = elapsedMs > 0 ? finished * 1000 / elapsedMs : 0;
    let stride = 1;
    while (stride * 2 * TIMED_PER_S <= perSecond && stride < 1 << 20) stride *= 2;
    if (stride !== this.stride) {
      this.stride = stride;
      if (this.countdown > stride) this.countdown = stride;
    }
    // A request never finished (its client went away: no finish is published) frees its slot
    // after a minute, unrecorded.
    for (let i = 0; i < this.end; i++) {
      if (this.slots[i] !== null && now - this.startedAt[i] >= RATE_MS) this.free(i);
    }
    return finished;
  }

  stop() {
    this.dc.unsubscribe('http.server.request.start', this.onStart);
    this.dc.unsubscribe('http.server.response.finish', this.onFinish);
  }
}

// GC pauses by kind: minor collections are the new space's, every other kind (major,
// incremental marking, weak callbacks) the old space's. Node hands the entries in batches
// (up to a dozen in an allocation-heavy loop): each is counted.
class GcStats {
  constructor(now) {
    this.count = 0;
    this.sum = 0; // seconds
    this.counts = GC_BUCKETS.map(() => 0); // cumulative: entries up to each bound
    this.latency = new Halves(() => new Spread(), now);
    this.latest = null; // the figures, until a collection is recorded or the windows move
  }

  record(ms) {
    const seconds = ms / 1000;
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < GC_BUCKETS.length; i++) if (seconds <= GC_BUCKETS[i]) this.counts[i]++;
    this.latency.parts[0].record(ms * 1000);
    this.latest = null;
  }

  report(now, data, name, kind) {
    if (this.latency.rotate(now)) this.latest = null;
    if (this.count === 0) return;
    if (this.latest === null) {
      // Worked out again only when something changed: an idle app collects rarely.
      const [a, b] = this.latency.parts;
      const recent = a.count + b.count > 0;
      const ms = (p) => (recent ? round(Spread.percentile(a, b, p) / 1000, 3) : 0);
      this.latest = {
        p50: ms(0.5),
        p95: ms(0.95),
        histogram: { le: GC_BUCKETS, counts: this.counts.slice(), count: this.count, sum: round(this.sum, 9) },
      };
    }
    data[name] = Object.assign(metric(this.latest.p50, `internal/v8/gc/${kind}/pause/p50`, 'ms'), { histogram: this.latest.histogram });
    data[`${name} p95`] = metric(this.latest.p95, `internal/v8/gc/${kind}/pause/p95`, 'ms');
  }
}

class GcMetrics {
  static start(perf) {
    if (typeof perf.PerformanceObserver !== 'function') return null;
    const now = perf.performance.now();
    const minor = perf.constants.NODE_PERFORMANCE_GC_MINOR;
    const gc = new GcMetrics(new GcStats(now), new GcStats(now));
    gc.observer = new perf.PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const kind = entry.detail ? entry.detail.kind : entry.kind;
        (kind === minor ? gc.young : gc.old).record(entry.duration);
      }
    });
    try {
      gc.observer.observe({ entryTypes: ['gc'] });
    } catch (_) {
      return null;
    }
    return gc;
  }

  constructor(young, old) {
    this.young = young;
    this.old = old;
    this.observer = null;
  }

  report(now, data) {
    this.young.report(now, data, 'GC New Space Pause', 'new');
    this.old.report(now, data, 'GC Old Space Pause', 'old');
  }

  stop() {
    this.observer.disconnect();
  }
}
