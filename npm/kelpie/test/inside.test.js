'use strict';
// PM2's "inside pm2" case: an app run by Kelpie uses the API to look at its own siblings.

const assert = require('node:assert/strict');
const path = require('node:path');
const { test, after } = require('node:test');
const { kelpie, writeFile, waitFor, collect } = require('./helpers');

after(async () => {
  await kelpie.killDaemon().catch(() => {});
});

test('an app lists its siblings through the API and tells the bus', async () => {
  const api = path.resolve(__dirname, '..');
  const script = writeFile('inspector.js', `
    const kelpie = require(${JSON.stringify(api)});
    kelpie.list((err, list) => {
      if (err) { console.error(err); process.exit(1); }
      const siblings = list.filter((p) => p.name === 'fleet').map((p) => p.pm_id);
      process.send({ type: 'siblings', data: { mine: Number(process.env.pm_id), siblings } });
      kelpie.disconnect();
    });
    setInterval(() => {}, 1000);
  `);
  const bus = await kelpie.launchBus();
  const reports = collect(bus, 'siblings');
  const procs = await kelpie.start(script, { name: 'fleet', instances: 3 });
  const ids = procs.map((p) => p.pm_id).sort();
  await waitFor('a report from each instance', () => reports.length >= 3);
  for (const report of reports) {
    assert.deepEqual([...report.data.siblings].sort(), ids);
    assert.equal(report.data.mine, report.process.pm_id);
  }
  bus.close();
  await kelpie.delete('fleet');
});
