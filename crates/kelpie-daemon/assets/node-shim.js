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
    let draining = false;
    // Connections are tracked only from the drain on, through the list Node's http server keeps
    // itself (Node >= 18.14): watching every connection and request from the start cost ~15% of
    // the throughput of a hello world with a new connection per request. Without that list
    // (older Node, or a plain net server), fall back to watching connections from the start.
    const nodeList = () => {
      const key = Object.getOwnPropertySymbols(server).find((k) => k.description === 'http.server.connections');
      const list = key && server[key];
      return list && typeof list.all === 'function' ? list : null;
    };
    const tracked = nodeList() ? null : new Set();
    if (tracked) {
      server.on(typeof server.setSecureContext === 'function' ? 'secureConnection' : 'connection', (socket) => {
        tracked.add(socket);
        socket.once('close', () => tracked.delete(socket));
      });
    }
    const sockets = () => {
      if (tracked) return [...tracked];
      const list = nodeList();
      return list ? list.all().map((parser) => parser.socket).filter(Boolean) : [];
    };

    // A connection is busy while a response is outstanding (Node sets `_httpMessage` until the
    // response finishes), and idle when it is not and has received no byte since we last looked
    // (bytes received mean a request is on its way: it will be answered, with
    // `Connection: close`). Idle past the grace, it is closed.
    const seen = new WeakMap(); // socket -> { since, read }
    const busy = (socket) => Boolean(socket._httpMessage);
    function sweep() {
      const now = performance.now();
      const expired = [];
      for (const socket of sockets()) {
        const state = seen.get(socket);
        if (!state || busy(socket) || socket.bytesRead !== state.read) {
          seen.set(socket, { since: now, read: socket.bytesRead });
        } else if (now - state.since >= IDLE_GRACE_MS) {
          expired.push(socket);
        }
      }
      // A late timer may run before Node has read a request the kernel already holds: close
      // them on setImmediate, after the event loop's next read phase, if they are still idle.
      const stillIdle = (socket) => !busy(socket) && socket.bytesRead === seen.get(socket).read;
      if (expired.length) setImmediate(() => expired.forEach((s) => stillIdle(s) && s.destroy()));
    }

    function drain() {
      if (draining) return;
      draining = true;
      const http = server.listenerCount('request') > 0;
      if (http) {
        // Every response from now on, and the ones in progress that have not started, carry
        // `Connection: close`.
        server.prependListener('request', (req, res) => { res.shouldKeepAlive = false; });
        for (const socket of sockets()) {
          const res = socket._httpMessage;
          if (res && !res.headersSent) res.shouldKeepAlive = false;
        }
      }
      server.once('close', () => setImmediate(() => process.exit(0)));
      // net's close, not http's: since Node 19 http.Server#close also drops idle keep-alive
      // connections at once, racing with a client sending a request on one of them.
      // Closing our copy of the socket only stops this instance from accepting: the others
      // keep accepting from the same queue.
      net.Server.prototype.close.call(server);
      // Idle connections only mean something for HTTP (the app answers 'request'); for other
      // protocols the connections are the app's, and the daemon's kill timeout is the bound.
      if (http) {
        sweep();
        setInterval(sweep, SWEEP_MS).unref();
      }
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
