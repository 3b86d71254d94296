// The package as an ES module, through its `exports` map (a file inside the package reaches it
// by its own name, as an app that installed it does): the default client, the calls as named
// exports, and the same client as `require('kelpie')` gives.

import assert from 'node:assert/strict';
import { test, after } from 'node:test';
import { createRequire } from 'node:module';
import kelpie, { connect, list, start, getVersion, killDaemon, delete as remove } from 'kelpie';

const require = createRequire(import.meta.url);

after(async () => {
  await killDaemon().catch(() => {});
});

test('import and require give the same client', async () => {
  assert.equal(require('kelpie'), kelpie);
  assert.equal(typeof connect, 'function');
  await connect();
  assert.match(await getVersion(), /^7\.\d+\.\d+$/);
  const [proc] = await start('sleep', { name: 'esm-sleeper', args: ['600'] });
  assert.equal(proc.name, 'esm-sleeper');
  assert.ok((await list()).some((p) => p.name === 'esm-sleeper'));
  await remove('esm-sleeper');
  assert.ok(!(await kelpie.list()).some((p) => p.name === 'esm-sleeper'));
});
