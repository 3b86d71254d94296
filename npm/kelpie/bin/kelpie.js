#!/usr/bin/env node
'use strict';
// The `kelpie` command npm installs: runs the native binary with the same arguments and the same
// stdin, stdout and stderr, and ends the way it ended (its exit status, or its signal), so that
// `kelpie` through npm behaves like the binary itself.

const { spawn } = require('child_process');
const os = require('os');
const path = require('path');
const { binaryPath } = require('../lib/binary.js');

let binary;
try {
  binary = binaryPath();
} catch (error) {
  process.stderr.write(`kelpie: ${error.message}\n`);
  process.exit(1);
}

// Run through a link named `pm2` or `pm2-runtime` (Kelpie's drop-in), the binary must see that
// name: it is what gives its home PM2's file names, and makes `pm2-runtime` its `runtime`.
const name = path.basename(process.argv[1] || '');
const argv0 = name === 'pm2' || name === 'pm2-runtime' ? name : undefined;
const child = spawn(binary, process.argv.slice(2), { stdio: 'inherit', argv0 });

// A `kill` of this process must reach kelpie. Ctrl-C already reaches both (the terminal signals
// the whole process group), so kelpie gets that one twice: the commands that handle SIGINT
// (monit, serve, runtime) take it as a request to end, which the second one only repeats.
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const forwarders = new Map();
for (const signal of FORWARDED) {
  const forward = () => {
    try {
      child.kill(signal);
    } catch (_) {
      // The child is already gone; its exit is on its way.
    }
  };
  forwarders.set(signal, forward);
  process.on(signal, forward);
}

function stopForwarding() {
  for (const [signal, forward] of forwarders) process.removeListener(signal, forward);
}

child.on('error', (error) => {
  stopForwarding();
  process.stderr.write(`kelpie: cannot run ${binary}: ${error.message}\n`);
  process.exit(1);
});

child.on('exit', (code, signal) => {
  stopForwarding();
  if (signal) {
    // Die of the same signal, so whoever waits for us sees what killed kelpie. A signal Node
    // ignores (SIGPIPE) does not end us: then the shell's convention, 128 + its number.
    process.kill(process.pid, signal);
    setTimeout(() => process.exit(128 + (os.constants.signals[signal] || 0)), 100);
    return;
  }
  process.exit(code === null ? 1 : code);
});
