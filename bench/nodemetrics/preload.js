'use strict';
// Loads the Node shim's runtime metrics alone (crates/kelpie-supervisor/assets/node-metrics.js),
// started as the shim starts them: `node -r ./preload.js app.js`. What they send goes to the
// daemon when the app has an IPC channel (an app Kelpie started with `pmx: false`, so that its
// shim sends none itself), else it is serialised (as process.send would) and dropped. For
// measuring what the metrics cost an app (bench/nodemetrics/perreq.py); KELPIE_METRICS_LOG=1
// prints each message.
const fs = require('fs');
const path = require('path');
const file = path.join(__dirname, '..', '..', 'crates', 'kelpie-daemon', 'assets', 'node-metrics.js');
let source = fs.readFileSync(process.env.KELPIE_METRICS_FILE || file, 'utf8');
// KELPIE_METRICS_WITHOUT=http,gc,eld: that part left out (to find what costs).
for (const part of (process.env.KELPIE_METRICS_WITHOUT || '').split(',').filter(Boolean)) {
  const line = { http: 'const http = HttpMetrics.start(perf);', gc: 'const gc = GcMetrics.start(perf);',
    eld: 'this.eld = this.perf.monitorEventLoopDelay(' }[part];
  if (!line || !source.includes(line)) throw new Error(`KELPIE_METRICS_WITHOUT: ${part}: not found`);
  source = source.replace(line, part === 'eld' ? 'return; (' : line.replace(/= .*;/, '= null;'));
}
// KELPIE_METRICS_SLOW=k: every period of the metrics k times longer (an app run k times slower,
// under valgrind: instructions.py, whose per-request figure the timers would otherwise swell).
const slow = Number(process.env.KELPIE_METRICS_SLOW) || 1;
if (slow !== 1) {
  for (const name of ['METRICS_MS', 'RATE_MS', 'HALF_MS', 'ELD_RESOLUTION_MS', 'ELD_QUIET_MS']) {
    const re = new RegExp(`const ${name} = (\\d+);`);
    if (!re.test(source)) throw new Error(`KELPIE_METRICS_SLOW: ${name}: not found`);
    source = source.replace(re, (_, ms) => `const ${name} = ${Number(ms) * slow};`);
  }
}
const log = process.env.KELPIE_METRICS_LOG === '1';
const send = (message) => {
  const text = JSON.stringify(message);
  if (log) process.stderr.write(text + '\n');
  if (typeof process.send === 'function' && process.connected) process.send(message, () => {});
};
// eslint-disable-next-line no-new-func
const start = new Function('require', 'send', `${source}\nreturn () => reportRuntimeMetrics(send);\n`)(require, send);
let stop = start();
// KELPIE_METRICS_STOPPED=1: stopped at once (what their start leaves in a process, without them).
if (process.env.KELPIE_METRICS_STOPPED === '1') {
  stop();
  stop = null;
}
// KELPIE_METRICS_TOGGLE=<file>: SIGUSR2 stops the metrics at once (everything the shim
// started: as when it finds @pm2/io) or starts them again, and writes `on` or `off` to the
// file once done, so one process can be measured both ways (perreq.py --toggle).
const toggleFile = process.env.KELPIE_METRICS_TOGGLE;
if (toggleFile) {
  fs.writeFileSync(toggleFile, 'on');
  process.on('SIGUSR2', () => {
    if (stop) {
      stop();
      stop = null;
    } else {
      stop = start();
    }
    fs.writeFileSync(toggleFile, stop ? 'on' : 'off');
  });
}
