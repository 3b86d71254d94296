'use strict';
// Kelpie cluster shim, preloaded with `node --require <this file> app.js`.
//
// In cluster mode the Kelpie daemon owns the app's listening socket and hands it to every
// instance at fd 3 (systemd socket-activation style: LISTEN_FDS=1, LISTEN_PID=<our pid>).
// This shim lets an unchanged Node app use it: the app's first `listen()` on the app's port
// (KELPIE_LISTEN_PORT) or Unix socket path (KELPIE_LISTEN) is turned into `listen({ fd: 3 })`,
// so every instance accepts from the same kernel queue. It then
//   - sends {"kelpie":"listening","address":...} over the Node IPC channel (readiness);
//   - drains on stop (the stop signal, or the IPC message "shutdown") when the app has no
//     handler of its own: stop accepting, answer with `Connection: close`, close idle
//     keep-alive connections after a grace, and exit(0) once no connection is left.
// It does nothing at all unless LISTEN_PID is this process, and never throws at load.

const LISTEN_FD = 3; // SD_LISTEN_FDS_START: the first (and only) socket the daemon passes
const LISTEN_BACKLOG = 4096; // the daemon's (kelpie_sys::LISTEN_BACKLOG)
// How long a drained HTTP connection may sit idle before we close it. Not zero: a keep-alive
// client that has just received a response may be sending its next request on that connection
// right now, and closing it under that request would make the request fail. It will get an
// answer with `Connection: close` instead. Leave it well below the daemon's kill timeout.
const IDLE_GRACE_MS = 1000;
const SWEEP_MS = 100; // how often a draining server looks for connections past their grace
const STATE = Symbol('kelpie.connection');

try {
  install();
} catch (err) {
  // A broken shim must never take the app down: carry on as if it were not there.
  try { process.emitWarning(`kelpie shim disabled: ${err && err.message}`); } catch (_) {}
}

function install() {
  const env = process.env;
  if (env.LISTEN_PID !== String(process.pid) || env.LISTEN_FDS !== '1') return;
  const address = env.KELPIE_LISTEN || '';
  const port = Number(env.KELPIE_LISTEN_PORT) || 0;
  // Like sd_listen_fds(1): the socket is ours, not our children's.
  for (const name of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'KELPIE_LISTEN', 'KELPIE_LISTEN_PORT']) {
    delete env[name];
  }

  const fs = require('fs');
  const net = require('net');
  const path = require('path');
  const unix = port ? null : address.startsWith('unix:') ? address.slice(5) : address.startsWith('/') ? address : null;
  const unixPath = unix && path.resolve(unix);
  if (!port && !unixPath) return;
  try {
    if (!fs.fstatSync(LISTEN_FD).isSocket()) return; // unusable: leave listen() alone
  } catch (_) {
    return;
  }

  const sig = env.KELPIE_KILL_SIGNAL;
  const stopSignal = /^SIG[A-Z0-9]+$/.test(sig || '') && require('os').constants.signals[sig] &&
    sig !== 'SIGKILL' && sig !== 'SIGSTOP' ? sig : 'SIGINT';

  // Does this listen() call target the daemon's address? Accepts every form of
  // net.Server#listen: (port[, host][, backlog][, cb]), (path[, backlog][, cb]), (options[, cb]).
  // Calls with a handle or an fd, port 0/none, or another port or path are not ours.
  function isShared(args) {
    let target = args[0];
    if (target !== null && typeof target === 'object') {
      if (target.fd != null || target.handle || target._handle) return false;
      target = unixPath ? target.path : target.port;
    }
    if (unixPath) return typeof target === 'string' && path.resolve(target) === unixPath;
    return (typeof target === 'number' || (typeof target === 'string' && target.trim() !== '')) &&
      Number(target) === port;
  }

  const originalListen = net.Server.prototype.listen;
  let claimed = false; // fd 3 goes to the first matching server only; Node closes it with that server
  net.Server.prototype.listen = function listen(...args) {
    if (claimed || !isShared(args)) return originalListen.apply(this, args);
    // Node listens again on the fd with its own backlog (511 by default): keep the daemon's.
    const options = { fd: LISTEN_FD, backlog: LISTEN_BACKLOG };
    if (args[0] && typeof args[0] === 'object' && args[0].signal) options.signal = args[0].signal;
    const last = args[args.length - 1];
    claimed = true;
    try {
      originalListen.apply(this, typeof last === 'function' ? [options, last] : [options]);
    } catch (err) {
      claimed = false;
      throw err;
    }
    // A Unix socket opened from an fd has no name in Node; give address() the path.
    if (unixPath && this._handle && !this._handle.getsockname) this._pipeName = unixPath;
    this.once('listening', () => share(this)); // after the app's own listen callback
    return this;
  };

  // The app's server now listens on the shared socket.
  function share(server) {
    const connections = new Set();
    const inflight = new Set(); // HTTP responses not finished yet
    let draining = false;

    server.on(typeof server.setSecureContext === 'function' ? 'secureConnection' : 'connection', (socket) => {
      socket[STATE] = { busy: 0, since: performance.now(), read: 0 };
      connections.add(socket);
      socket.once('close', () => connections.delete(socket));
    });
    server.prependListener('request', (req, res) => {
      const state = req.socket && req.socket[STATE];
      if (state) state.busy += 1;
      inflight.add(res);
      if (draining) res.shouldKeepAlive = false; // answer with `Connection: close`
      res.once('close', () => {
        inflight.delete(res);
        if (!state) return;
        state.busy -= 1;
        state.since = performance.now();
        state.read = req.socket.bytesRead;
      });
    });

    // Close the connections idle past their grace. A connection counts as idle when it has no
    // request in progress and has received no byte since its last response (bytes received
    // mean a request is on its way: it will be answered, with `Connection: close`).
    const idle = (socket) => !socket[STATE].busy && socket.bytesRead === socket[STATE].read;
    function sweep() {
      const now = performance.now();
      const expired = [];
      for (const socket of connections) {
        const state = socket[STATE];
        if (state.busy) continue;
        if (socket.bytesRead !== state.read) {
          state.read = socket.bytesRead;
          state.since = now;
        } else if (now - state.since >= IDLE_GRACE_MS) {
          expired.push(socket);
        }
      }
      // A late timer may run before Node has read a request the kernel already holds: close
      // them on setImmediate, after the event loop's next read phase, if they are still idle.
      if (expired.length) setImmediate(() => expired.forEach((s) => idle(s) && s.destroy()));
    }

    function drain() {
      if (draining) return;
      draining = true;
      for (const res of inflight) if (!res.headersSent) res.shouldKeepAlive = false;
      server.once('close', () => setImmediate(() => process.exit(0)));
      // net's close, not http's: since Node 19 http.Server#close also drops idle keep-alive
      // connections at once, racing with a client sending a request on one of them.
      // Closing our copy of the socket only stops this instance from accepting: the others
      // keep accepting from the same queue.
      net.Server.prototype.close.call(server);
      // Idle connections only mean something for HTTP (the app answers 'request'); for other
      // protocols the connections are the app's, and the daemon's kill timeout is the bound.
      if (server.listenerCount('request') > 1) setInterval(sweep, SWEEP_MS).unref();
    }

    function onSignal() {
      if (process.listenerCount(stopSignal) > 1) return; // the app handles it: its call
      if (!draining) return drain();
      // Asked again while draining: die of the signal, as the app would have without us.
      process.removeListener(stopSignal, onSignal);
      process.kill(process.pid, stopSignal);
    }

    function onMessage(message) {
      if (message === 'shutdown' && process.listenerCount('message') === 1) drain();
    }

    // Installed only while the shared server is open, so that the app's behaviour is unchanged
    // otherwise: a signal listener turns off Node's default exit, and a 'message' listener keeps
    // the IPC channel (and so the process) alive, which an open server does anyway.
    process.on(stopSignal, onSignal);
    if (process.send) process.on('message', onMessage);
    server.once('close', () => {
      process.removeListener(stopSignal, onSignal);
      process.removeListener('message', onMessage);
    });

    if (process.send && process.connected) {
      try {
        process.send({ kelpie: 'listening', address: server.address() }, () => {});
      } catch (_) {} // no channel after all: the daemon will see the instance some other way
    }
  }
}
