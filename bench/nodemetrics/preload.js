'use strict';
// Loads the Node shim's runtime metrics alone (crates/kelpie-daemon/assets/node-metrics.js),
// started as the shim starts them, without a daemon: `node -r ./preload.js app.js`. What it
// would send is serialised (as process.send would) and dropped. For measuring what the metrics
// cost an app (bench/nodemetrics/perreq.py); KELPIE_METRICS_LOG=1 prints each message.
const fs = require('fs');
const path = require('path');
const file = path.join(__dirname, '..', '..', 'crates', 'kelpie-daemon', 'assets', 'node-metrics.js');
let source = fs.readFileSync(file, 'utf8');
// KELPIE_METRICS_WITHOUT=http,gc,eld: that part left out (to find what costs).
for (const part of (process.env.KELPIE_METRICS_WITHOUT || '').split(',').filter(Boolean)) {
  const line = { http: 'const http = HttpMetrics.start(perf);', gc: 'const gc = GcMetrics.start(perf);',
    eld: 'this.eld = this.perf.monitorEventLoopDelay(' }[part];
  if (!line || !source.includes(line)) throw new Error(`KELPIE_METRICS_WITHOUT: ${part}: not found`);
  source = source.replace(line, part === 'eld' ? 'return; (' : line.replace(/= .*;/, '= null;'));
}
const log = process.env.KELPIE_METRICS_LOG === '1';
const send = (message) => {
  const text = JSON.stringify(message);
  if (log) process.stderr.write(text + '\n');
};
// eslint-disable-next-line no-new-func
const start = new Function('require', 'send', `${source}\nreturn () => reportRuntimeMetrics(send);\n`)(require, send);
start();
// KELPIE_METRICS_TOGGLE=1: SIGUSR2 turns the metrics off (as @pm2/io's presence does: within a
// report) and on again, so one process can be measured both ways (perreq.py --toggle).
if (process.env.KELPIE_METRICS_TOGGLE === '1') {
  const flag = Symbol.for('@pm2/io');
  process.on('SIGUSR2', () => {
    if (global[flag]) {
      delete global[flag];
      start();
    } else {
      global[flag] = true;
    }
  });
}
