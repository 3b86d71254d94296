// Kelpie's Node shim, second part: profiles and the inspector of the running app, on the
// daemon's request (`kelpie profile cpu|heap`, `kelpie inspect`; launch order: node-metrics.js,
// this file, node-shim.js, which starts it; declarations only here, nothing runs at load).
//
// The daemon asks with an internal IPC message ({cmd: 'NODE_KELPIE_INSPECT', id, action, ...}):
// Node gives `NODE_*` messages to 'internalMessage' listeners, never to the app's 'message'
// handlers, and such a listener does not keep the app alive. The answer goes back as
// {kelpie: 'profile-part', id, data} messages carrying the profile's text in order, each sent
// once the one before is written (the daemon reads them as its client takes them), then
// {kelpie: 'profile-end', id, bytes, pause_ms} (or {url} for the inspector, {error} on
// failure). Everything runs in the app's own thread, through `inspector.Session` (no port
// opened) for a CPU profile and `v8.getHeapSnapshot()` for a heap snapshot: the app keeps
// serving while a CPU profile samples it (a sampling profiler: each sample costs a few µs), and
// pauses while V8 writes its heap's graph for a snapshot (about 1 s per 100 MB of heap).

const PART_CHARS = 256 * 1024; // a CPU profile's text is sent in parts of this many characters

function answerInspections() {
  if (typeof process.send !== 'function') return;
  let opened = null; // the inspector this shim opened: its close timer
  process.on('internalMessage', (message) => {
    if (!message || message.cmd !== 'NODE_KELPIE_INSPECT') return;
    const id = message.id;
    const end = (fields) => sendNow({ kelpie: 'profile-end', id, ...fields });
    const failed = (err) => end({ error: String((err && err.message) || err) });
    try {
      switch (message.action) {
        case 'cpu': return cpuProfile(id, message, end, failed);
        case 'heap': return heapSnapshot(id, end, failed);
        case 'open': opened = openInspector(message, opened, end); return undefined;
        case 'close': opened = closeInspector(opened, end); return undefined;
        default: return failed(`this shim does not know the action ${message.action}`);
      }
    } catch (err) {
      return failed(err);
    }
  });
}

function cpuProfile(id, message, end, failed) {
  const inspector = require('inspector');
  const session = new inspector.Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => {
    session.post(method, params || {}, (err, result) => (err ? reject(err) : resolve(result)));
  });
  const ms = Math.max(1, Number(message.ms) || 10000);
  const interval = Math.max(10, Number(message.interval_us) || 1000);
  post('Profiler.enable')
    .then(() => post('Profiler.setSamplingInterval', { interval }))
    .then(() => post('Profiler.start'))
    .then(() => new Promise((resolve) => { setTimeout(resolve, ms).unref(); }))
    .then(() => post('Profiler.stop'))
    .then(({ profile }) => {
      session.disconnect();
      const text = JSON.stringify(profile);
      const parts = [];
      for (let at = 0; at < text.length; at += PART_CHARS) parts.push(text.slice(at, at + PART_CHARS));
      sendParts(id, parts[Symbol.iterator](), () => end({ bytes: Buffer.byteLength(text) }));
    })
    .catch((err) => {
      try { session.disconnect(); } catch (_) {}
      failed(err);
    });
}

function heapSnapshot(id, end, failed) {
  const began = process.hrtime.bigint();
  // Synchronous: V8 walks the heap and the app waits; the text is then streamed.
  const stream = require('v8').getHeapSnapshot();
  const pauseMs = Number(process.hrtime.bigint() - began) / 1e6;
  stream.setEncoding('utf8');
  let bytes = 0;
  stream.on('data', (data) => {
    bytes += Buffer.byteLength(data);
    stream.pause();
    sendPart(id, data, () => stream.resume());
  });
  stream.on('end', () => end({ bytes, pause_ms: Math.round(pauseMs * 10) / 10 }));
  stream.on('error', failed);
}

function openInspector(message, opened, end) {
  const inspector = require('inspector');
  const ms = Math.max(1000, Number(message.ms) || 600000);
  if (inspector.url() && !opened) {
    // Opened by the app itself (`--inspect`): said, and left as it is.
    end({ url: inspector.url(), own: true });
    return opened;
  }
  if (!inspector.url()) inspector.open(Number(message.port) || 0, message.host || '127.0.0.1', false);
  if (opened) clearTimeout(opened);
  const timer = setTimeout(() => { try { inspector.close(); } catch (_) {} }, ms);
  timer.unref();
  end({ url: inspector.url(), open_ms: ms });
  return timer;
}

function closeInspector(opened, end) {
  if (!opened) {
    end({ error: 'no inspector opened by `kelpie inspect` is open in this process' });
    return opened;
  }
  clearTimeout(opened);
  require('inspector').close();
  end({ closed: true });
  return null;
}

// The parts, each once the one before is written.
function sendParts(id, parts, done) {
  const next = parts.next();
  if (next.done) return done();
  return sendPart(id, next.value, () => sendParts(id, parts, done));
}

function sendPart(id, data, then) {
  try {
    if (!process.connected) return;
    process.send({ kelpie: 'profile-part', id, data }, () => then());
  } catch (_) {}
}
