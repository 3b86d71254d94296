'use strict';
// The API's calls against a real daemon: start in its three forms, the list in PM2's shape,
// stop/restart/reload/delete, signals, flush, dump, errors, and both calling styles.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test, after } = require('node:test');
const { kelpie, writeFile, idleApp, waitFor } = require('./helpers');

after(async () => {
  await kelpie.killDaemon().catch(() => {});
});

test('connect starts a daemon when none runs', async () => {
  assert.equal(fs.existsSync(path.join(process.env.KELPIE_HOME, 'kelpie.sock')), false);
  await kelpie.connect();
  const pong = await kelpie.ping();
  assert.ok(pong.pid > 0);
  assert.ok(fs.existsSync(path.join(process.env.KELPIE_HOME, 'kelpie.sock')));
});

test('start(script, options) starts its instances and answers with their PM2 descriptions', async () => {
  const script = writeFile('idle.js', idleApp);
  const procs = await kelpie.start(script, { name: 'web', instances: 2, env: { GREETING: 'hi' } });
  assert.deepEqual(procs.map((p) => p.name), ['web', 'web']);
  for (const p of procs) {
    assert.equal(p.pm2_env.status, 'online');
    assert.ok(p.pid > 0);
    assert.equal(p.pm2_env.pm_exec_path, script);
    assert.equal(p.pm2_env.env.GREETING, 'hi');
  }
  assert.deepEqual(procs.map((p) => p.pm2_env.NODE_APP_INSTANCE).sort(), [0, 1]);
  // The same script under a running name is refused, as PM2 does without `force`.
  await assert.rejects(kelpie.start(script, { name: 'web' }), (err) => err.kind === 'Conflict' && /web/.test(err.message));
  const list = await kelpie.list();
  assert.equal(list.filter((p) => p.name === 'web').length, 2);
});

test('start(options) takes an ecosystem app object, camelCase as PM2 accepts', async () => {
  const script = writeFile('idle2.js', idleApp);
  const [proc] = await kelpie.start({ script, name: 'worker', maxRestarts: 7, killTimeout: 2500, namespace: 'jobs' });
  assert.equal(proc.pm2_env.max_restarts, 7);
  assert.equal(proc.pm2_env.kill_timeout, 2500);
  assert.equal(proc.pm2_env.namespace, 'jobs');
  // As an object (an ecosystem), a running app is restarted, not refused.
  const [again] = await kelpie.start({ script, name: 'worker', namespace: 'jobs' });
  assert.equal(again.pm_id, proc.pm_id);
  assert.notEqual(again.pid, proc.pid);
});

test('start(ecosystemFile, {only}) reads the file in the daemon', async () => {
  const script = writeFile('idle3.js', idleApp);
  const file = writeFile('ecosystem.config.js', `module.exports = { apps: [
    { name: 'eco-a', script: ${JSON.stringify(script)} },
    { name: 'eco-b', script: ${JSON.stringify(script)}, env: { FROM: 'file' } },
  ] };`);
  const procs = await kelpie.start(file, { only: 'eco-b' });
  assert.deepEqual(procs.map((p) => p.name), ['eco-b']);
  assert.equal(procs[0].pm2_env.env.FROM, 'file');
  assert.equal((await kelpie.describe('eco-a')).length, 0);
});

test('a file read in the daemon counts the CPUs the caller has, not the daemon\'s one', async () => {
  // The daemon keeps its threads on one CPU; what it starts, and the files it reads, see all.
  const cpus = require('node:os').availableParallelism();
  const file = writeFile('cpus.config.js', `module.exports = { apps: [
    { name: 'cpus', script: 'sleep', args: '600', interpreter: 'none', instances: 'max',
      env: { FILE_SAW: String(require('os').availableParallelism()) } },
  ] };`);
  const procs = await kelpie.start(file);
  assert.equal(procs.length, cpus);
  assert.equal(procs[0].pm2_env.env.FILE_SAW, String(cpus));
  await kelpie.delete('cpus');
});

test('bad options are refused with the field named, and nothing starts', async () => {
  const before = (await kelpie.list()).length;
  await assert.rejects(
    kelpie.start({ script: writeFile('idle4.js', idleApp), name: 'bad', instances: 'lots' }),
    (err) => err.kind === 'Invalid' && /instances/.test(err.message) && /bad/.test(err.message),
  );
  await assert.rejects(kelpie.start(path.join(process.env.KELPIE_TEST_DIR, 'missing.config.js')), /missing\.config\.js/);
  assert.equal((await kelpie.list()).length, before);
});

test('stop, restart, reload, describe and delete act on names, ids and namespaces', async () => {
  const stopped = await kelpie.stop('web');
  assert.deepEqual(stopped.map((p) => p.pm2_env.status), ['stopped', 'stopped']);
  const restarted = await kelpie.restart('web');
  assert.deepEqual(restarted.map((p) => p.pm2_env.status), ['online', 'online']);
  const [first] = restarted;
  const [reloaded] = await kelpie.reload(first.pm_id);
  assert.equal(reloaded.pm_id, first.pm_id);
  assert.notEqual(reloaded.pid, first.pid);
  const [described] = await kelpie.describe('jobs');
  assert.equal(described.name, 'worker');
  const deleted = await kelpie.delete('jobs');
  assert.deepEqual(deleted.map((p) => p.name), ['worker']);
  assert.equal((await kelpie.describe('worker')).length, 0);
  await assert.rejects(kelpie.stop('nothing-here'), (err) => err.kind === 'NotFound');
});

test('restart with updateEnv gives the processes the caller\'s environment', async () => {
  process.env.KELPIE_API_TEST_VAR = 'fresh';
  try {
    await kelpie.restart('eco-b', { updateEnv: true });
  } finally {
    delete process.env.KELPIE_API_TEST_VAR;
  }
  const [p] = await kelpie.describe('eco-b');
  const environ = fs.readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0');
  assert.ok(environ.includes('KELPIE_API_TEST_VAR=fresh'));
});

test('signals reach the process, by name and by id', async () => {
  const [p] = await kelpie.describe('eco-b');
  // Online means spawned: wait until its handler is set (its hello is printed after it).
  await waitFor('the app to say hello', () => fs.readFileSync(p.pm2_env.pm_out_log_path, 'utf8').includes(`hello from ${p.pid}`));
  const received = () => (fs.readFileSync(p.pm2_env.pm_out_log_path, 'utf8').match(/got SIGUSR2/g) || []).length;
  // One at a time: two of the same signal sent before the process runs again are one pending
  // signal for the kernel, so the second would be lost on a busy machine.
  await kelpie.sendSignalToProcessName('SIGUSR2', 'eco-b');
  await waitFor('a SIGUSR2 line in the log', () => received() === 1);
  await kelpie.sendSignalToProcessId('SIGUSR2', p.pm_id);
  await waitFor('two SIGUSR2 lines in the log', () => received() === 2);
  await assert.rejects(kelpie.sendSignalToProcessName('SIGNOPE', 'eco-b'), /unknown signal/);
});

test('flush empties log files, dump saves the list, reloadLogs reopens', async () => {
  const [p] = await kelpie.describe('eco-b');
  assert.ok(fs.statSync(p.pm2_env.pm_out_log_path).size > 0);
  await kelpie.flush('eco-b');
  assert.equal(fs.statSync(p.pm2_env.pm_out_log_path).size, 0);
  await kelpie.dump();
  const dump = fs.readFileSync(path.join(process.env.KELPIE_HOME, 'dump.json'), 'utf8');
  assert.match(dump, /eco-b/);
  assert.match(await kelpie.reloadLogs(), /./);
});

test('callbacks get (err, result) as in PM2', async () => {
  const list = await new Promise((resolve, reject) => {
    kelpie.list((err, result) => (err ? reject(err) : resolve(result)));
  });
  assert.ok(Array.isArray(list));
  const err = await new Promise((resolve) => {
    kelpie.stop('nothing-here', (e, result) => resolve([e, result]));
  });
  assert.equal(err[0].kind, 'NotFound');
  assert.equal(err[1], undefined);
});
