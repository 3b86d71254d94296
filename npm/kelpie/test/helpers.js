'use strict';
// What the API tests share: a client of the home the test harness gave
// (crates/kelpie-cli/tests/cli/node_api.rs sets KELPIE_HOME, KELPIE_BINARY and
// KELPIE_TEST_DIR), apps written to files, and waiting for a condition.

const fs = require('fs');
const path = require('path');
const kelpie = require('..');

for (const name of ['KELPIE_HOME', 'KELPIE_BINARY', 'KELPIE_TEST_DIR']) {
  if (!process.env[name]) throw new Error(`${name} is not set: run these tests through \`cargo test -p kelpie-cli --test cli node_api\``);
}

/** Write an app (or any file) into the test's directory; returns its path. */
function writeFile(name, text) {
  const file = path.join(process.env.KELPIE_TEST_DIR, name);
  fs.writeFileSync(file, text);
  return file;
}

/** A Node app that runs until stopped, says hello, and answers messages. */
const idleApp = `
process.on('message', (m) => {
  if (m && m.topic) process.send({ type: 'process:msg', data: { echo: m.data, topic: m.topic } });
});
process.on('SIGUSR2', () => console.log('got SIGUSR2'));
console.log('hello from ' + process.pid);
setInterval(() => {}, 1000);
`;

/** Wait until `condition()` (may be async) is true, or fail after `ms`. */
async function waitFor(what, condition, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The events of `bus` named `name`, as they come. */
function collect(bus, name) {
  const seen = [];
  bus.on(name, (packet) => seen.push(packet));
  return seen;
}

module.exports = { kelpie, writeFile, idleApp, waitFor, collect };
