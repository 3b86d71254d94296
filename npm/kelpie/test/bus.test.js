'use strict';
// The event bus (launchBus) against a real daemon: lifecycle events with exit codes, log
// lines, messages from processes, and sendDataToProcessId's round trip.

const assert = require('node:assert/strict');
const { test, after } = require('node:test');
const { kelpie, writeFile, idleApp, waitFor, collect } = require('./helpers');

after(async () => {
  await kelpie.killDaemon().catch(() => {});
});

test('process events: online, exit with its code, restart, stop, delete', async () => {
  const bus = await kelpie.launchBus();
  const events = collect(bus, 'process:event');
  // Exits with 3 once, after a moment, then stays up (a marker file says it crashed before).
  const marker = `${process.env.KELPIE_TEST_DIR}/crashed-once`;
  const script = writeFile('crash-once.js', `
    const fs = require('fs');
    if (!fs.existsSync(${JSON.stringify(marker)})) {
      fs.writeFileSync(${JSON.stringify(marker)}, '');
      setTimeout(() => process.exit(3), 300);
    }
    setInterval(() => {}, 1000);
  `);
  await kelpie.start(script, { name: 'crashy', restart_delay: 100 });
  await waitFor('the crash, the restart and the new process online', () =>
    events.filter((e) => e.process.name === 'crashy' && e.event === 'online').length >= 2);
  const kinds = events.filter((e) => e.process.name === 'crashy').map((e) => e.event);
  assert.deepEqual(kinds.slice(0, 2), ['online', 'exit']);
  assert.ok(kinds.includes('restart'), kinds.join(','));
  const exit = events.find((e) => e.process.name === 'crashy' && e.event === 'exit');
  assert.equal(exit.process.exit_code, 3);
  // The process as PM2 describes it, for notifiers that attach its logs (pm2-health).
  assert.match(exit.process.pm_out_log_path, /crashy-out\.log$/);
  assert.match(exit.process.pm_err_log_path, /crashy-error\.log$/);
  assert.equal(exit.process.exec_mode, 'fork_mode');
  assert.equal(exit.process.instances, 1);
  assert.equal(exit.process.env, undefined, 'no env (it may hold secrets)');
  assert.ok(exit.process.pid > 0);
  assert.equal(typeof exit.at, 'number');
  await kelpie.stop('crashy');
  await kelpie.delete('crashy');
  await waitFor('stop and delete', () => ['stop', 'delete'].every((kind) =>
    events.some((e) => e.process.name === 'crashy' && e.event === kind)));
  bus.close();
});

test('log lines arrive as log:out and log:err', async () => {
  const bus = await kelpie.launchBus();
  const out = collect(bus, 'log:out');
  const err = collect(bus, 'log:err');
  const script = writeFile('talker.js', `
    console.log('to stdout');
    console.error('to stderr');
    setInterval(() => {}, 1000);
  `);
  const [proc] = await kelpie.start(script, { name: 'talker' });
  await waitFor('both lines', () => out.some((l) => l.process.name === 'talker') && err.some((l) => l.process.name === 'talker'));
  const line = out.find((l) => l.process.name === 'talker');
  assert.equal(line.data, 'to stdout\n');
  assert.equal(line.process.pm_id, proc.pm_id);
  assert.equal(err.find((l) => l.process.name === 'talker').data, 'to stderr\n');
  await kelpie.delete('talker');
  bus.close();
});

test('sendDataToProcessId reaches process.on("message"), and process.send comes back on the bus', async () => {
  const bus = await kelpie.launchBus();
  const messages = collect(bus, 'process:msg');
  const [proc] = await kelpie.start(writeFile('echo.js', idleApp), { name: 'echo' });
  const sent = await kelpie.sendDataToProcessId(proc.pm_id, { topic: 'greet', data: { n: 42 } });
  assert.equal(sent.success, true);
  await waitFor('the echo', () => messages.some((m) => m.process.name === 'echo'));
  const echo = messages.find((m) => m.process.name === 'echo');
  assert.deepEqual(echo.data, { echo: { n: 42 }, topic: 'greet' });
  assert.equal(echo.process.pm_id, proc.pm_id);
  // The packet form, with the id inside.
  await kelpie.sendDataToProcessId({ id: proc.pm_id, topic: 'again', data: 1 });
  await waitFor('the second echo', () => messages.some((m) => m.data.topic === 'again'));
  await assert.rejects(kelpie.sendDataToProcessId(proc.pm_id, { data: 1 }), /topic/);
  await kelpie.delete('echo');
  bus.close();
});

test('a process without a Node IPC channel is reported, not silently skipped', async () => {
  const [proc] = await kelpie.start('sleep', { name: 'sleeper', args: ['600'] });
  await assert.rejects(
    kelpie.sendDataToProcessId(proc.pm_id, { topic: 't', data: 1 }),
    (err) => err.kind === 'Conflict' && /sleeper/.test(err.message) && /IPC/.test(err.message),
  );
  await kelpie.delete('sleeper');
});

test('what PM2 tools call: trigger an action, untyped messages with raw, scale, getVersion, disconnectBus', async () => {
  // An app speaking the SDK protocol by hand, as tx2 does: it registers `ping` and answers it;
  // and it relays untyped messages ({topic, data}), as pm2-intercom's apps do.
  const script = writeFile('actions.js', `
    process.send({ type: 'axm:action', data: { action_name: 'ping', arity: 1 } });
    process.on('message', (msg) => {
      if (msg === 'ping') process.send({ type: 'axm:reply', data: { action_name: 'ping', return: { pong: process.pid } } });
      if (msg && msg.msg === 'ping') process.send({ type: 'axm:reply', data: { action_name: 'ping', return: { param: msg.opts } } });
    });
    process.send({ topic: 'hello', data: { from: 'actions' } });
    setInterval(() => {}, 1000);
  `);
  const bus = await kelpie.launchBus();
  const raws = collect(bus, 'process:msg');
  await kelpie.start(script, { name: 'actions', instances: 2 });
  await waitFor('the actions registered', async () => (await kelpie.describe('actions'))
    .every((p) => p.pm2_env.axm_actions.some((a) => a.action_name === 'ping')));
  const replies = await kelpie.trigger('actions', 'ping');
  assert.equal(replies.length, 2);
  assert.deepEqual(replies.map((r) => r.data.action_name), ['ping', 'ping']);
  assert.ok(replies.every((r) => r.data.return.pong > 0 && r.process.name === 'actions'));
  const withParam = await kelpie.trigger('actions', 'ping', 'p1');
  assert.ok(withParam.every((r) => r.data.return.param === 'p1'));
  await assert.rejects(kelpie.trigger('actions', 'nope'), /Not any process/);
  await waitFor('the untyped messages', () => raws.filter((m) => m.raw && m.raw.topic === 'hello').length >= 2);
  assert.deepEqual(raws.find((m) => m.raw && m.raw.topic === 'hello').raw.data, { from: 'actions' });
  // scale, as pm2-autoscale does.
  assert.deepEqual(await kelpie.scale('actions', '+1'), { success: true });
  assert.equal((await kelpie.describe('actions')).length, 3);
  await kelpie.scale('actions', 1);
  assert.equal((await kelpie.describe('actions')).length, 1);
  // A version PM2-version gates accept (pm2-intercom: semver >= 0.15.11), and Kelpie's own.
  const version = await kelpie.getVersion();
  assert.match(version, /^7\.\d+\.\d+$/);
  assert.match(await kelpie.getKelpieVersion(), /^\d+\.\d+\.\d+/);
  await kelpie.disconnectBus();
  await kelpie.delete('actions');
});

test('killing the daemon says pm2:kill on the bus', async () => {
  const bus = await kelpie.launchBus();
  const kills = collect(bus, 'pm2:kill');
  await kelpie.killDaemon();
  await waitFor('pm2:kill', () => kills.length === 1);
  assert.equal(kills[0].status, 'killed');
});
