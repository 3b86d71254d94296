'use strict';
// Kelpie's Node shim, preloaded into every Node app with `node --require <this file> app.js`.
//
// It tells the daemon when the app's main module has run ({"kelpie":"main-ran"} over the IPC
// channel): a CommonJS main once its code has returned, an ES module main once it has been
// evaluated (top-level awaits included). The daemon counts a Node app online then (unless the
// config asks for more: wait_ready, a shared socket's listening...), so `start` answers once
// the app has installed its handlers: `kelpie start app.js && kelpie sendSignal SIGUSR2 app`
// reaches the app's handler, not SIGUSR2's default action.
//
// It lets an unchanged Node app share its listening sockets with the app's other instances,
// the sockets being owned by the Kelpie daemon (so a reload or a crash never leaves the port
// without a listener). Two ways, both turning the app's `listen()` into a listen on a socket
// the daemon gives:
//   - the app has a port in its config (`port`, or PORT in cluster mode): the daemon passes
//     the socket at fd 3 (systemd socket-activation style: LISTEN_FDS=1, LISTEN_PID=<our
//     pid>), and the app's first `listen()` on that port (KELPIE_LISTEN_PORT) or Unix socket
//     path (KELPIE_LISTEN) listens on fd 3. An app that runs Node below another program
//     (`npm start`, a command line) gets this shim in NODE_OPTIONS and KELPIE_LISTEN_INHERITED=1:
//     the first Node process of its tree to listen on the port takes fd 3;
//   - a Node app in cluster mode (KELPIE_SHARE_PORTS=1) listening on a port of its own
//     choosing (`app.listen(3000)`): the shim asks the daemon for that port's socket over the
//     Node IPC channel, and the daemon, like Node's cluster primary, binds it once per address
//     and passes the same socket (as a handle) to every instance that asks. `listen(0)` and
//     `exclusive: true` stay private to the instance.
// Then, for each shared server:
//   - it sends {"kelpie":"listening","address":...} over the IPC channel (readiness);
//   - on stop (the stop signal, or the IPC message "shutdown") it stops accepting at once,
//     before the app's own handler runs: the app's other instances take every new connection
//     (an app whose handler exits seconds later without `server.close()` would go on taking
//     them, and reset them when it exits). Then it drains: when the app has no handler of its
//     own, and whenever the app closes the server itself (`server.close()`): answer with
//     `Connection: close`, close idle keep-alive connections after a grace (and HTTP/2
//     sessions with GOAWAY); on a stop without a handler of the app's, it exits once no
//     connection is left (with one, the app decides when to exit);
//   - it tells the daemon now and then how many connections it holds; told it holds more than
//     its share of the app's (keep-alive clients all connect at once, and the instance that
//     wakes first would take most of them for good), it answers the next request on the
//     excess with `Connection: close`, and those clients reconnect, most likely elsewhere.
// It never throws at load.

const LISTEN_FD = 3; // SD_LISTEN_FDS_START: the first (and only) socket the daemon passes
const LISTEN_BACKLOG = 4096; // the daemon's (kelpie_sys::LISTEN_BACKLOG)
// How long a drained HTTP connection may sit idle before we close it. Not zero: a keep-alive
// client that has just received a response may be sending its next request on that connection
// right now, and closing it under that request would make the request fail. It will get an
// answer with `Connection: close` instead. Leave it well below the daemon's kill timeout.
const IDLE_GRACE_MS = 1000;
const SWEEP_MS = 100; // how often a draining server looks for connections past their grace
// How often an instance tells the daemon how many connections its shared servers hold, for
// the daemon to spread keep-alive connections evenly (see Sharing#report).
const REPORT_MS = 100;
const SHED = Symbol('kelpie.shed'); // a connection to close after its next response
// A daemon that does not answer a request for a socket (it always does) would leave the app
// never listening: after this long, the instance binds the port by itself.
const ANSWER_WITHIN_MS = 10000;

function install() {
  const env = process.env;
  // The app is not Node itself but runs Node below it (`npm start`, `bash -c 'node app.js'`):
  // every Node process of its tree has this shim (NODE_OPTIONS) and the socket at fd 3, and
  // the first to listen on the app's port takes it; the variables stay for those below.
  const inherited = env.KELPIE_LISTEN_INHERITED === '1' && env.LISTEN_FDS === '1';
  const fdMode = (env.LISTEN_PID === String(process.pid) || inherited) && env.LISTEN_FDS === '1';
  const claimMode = env.KELPIE_SHARE_PORTS === '1' && typeof process.send === 'function';
  const address = env.KELPIE_LISTEN || '';
  const port = Number(env.KELPIE_LISTEN_PORT) || 0;
  const sig = env.KELPIE_KILL_SIGNAL;
  // Like sd_listen_fds(1): the socket is ours, not our children's.
  for (const name of ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'KELPIE_LISTEN', 'KELPIE_LISTEN_PORT',
    'KELPIE_SHARE_PORTS']) {
    if ((fdMode && !inherited) || name === 'KELPIE_SHARE_PORTS') delete env[name];
  }
  if (!fdMode && !claimMode) return;

  const net = require('net');
  const stopSignal = /^SIG[A-Z0-9]+$/.test(sig || '') && require('os').constants.signals[sig] &&
    sig !== 'SIGKILL' && sig !== 'SIGSTOP' ? sig : 'SIGINT';
  const sharing = new Sharing(net, stopSignal);

  const fd = fdMode ? fdListen(address, port) : null;
  if (fd && inherited) passSocketOn(fd);
  const originalListen = net.Server.prototype.listen;
  const claims = claimMode ? new Claims(originalListen) : null;
  net.Server.prototype.listen = function listen(...args) {
    if (fd && fd.takes(args)) return fd.listen(this, originalListen, args, sharing);
    if (claims && !this._handle) {
      const target = claimTarget(args);
      if (target) return claims.listen(this, target, args, sharing);
    }
    return originalListen.apply(this, args);
  };
}

// The socket at fd 3, for the first listen() on the app's configured port or path.
function fdListen(address, port) {
  const fs = require('fs');
  const path = require('path');
  const unix = port ? null : address.startsWith('unix:') ? address.slice(5) : address.startsWith('/') ? address : null;
  const unixPath = unix && path.resolve(unix);
  if (!port && !unixPath) return null;
  try {
    // `bigint`: a plain fstatSync leaves this socket's mode in the array Node shares between
    // its stat calls, and Node 20's realpathSync then stops resolving a symlinked main module
    // (`node_modules/.bin/next`: "Cannot find module '../server/require-hook'").
    if (!fs.fstatSync(LISTEN_FD, { bigint: true }).isSocket()) return null; // unusable: leave listen() alone
  } catch (_) {
    return null;
  }
  let claimed = false; // fd 3 goes to the first matching server only; Node closes it with that server
  const free = () => !claimed;

  // Does this listen() call target the daemon's address? Accepts every form of
  // net.Server#listen: (port[, host][, backlog][, cb]), (path[, backlog][, cb]), (options[, cb]).
  // Calls with a handle or an fd, port 0/none, or another port or path are not ours.
  function takes(args) {
    if (claimed) return false;
    let target = args[0];
    if (target !== null && typeof target === 'object') {
      if (target.fd != null || target.handle || target._handle) return false;
      target = unixPath ? target.path : target.port;
    }
    if (unixPath) return typeof target === 'string' && path.resolve(target) === unixPath;
    return (typeof target === 'number' || (typeof target === 'string' && target.trim() !== '')) &&
      Number(target) === port;
  }

  function listen(server, originalListen, args, sharing) {
    // Node listens again on the fd with its own backlog (511 by default): keep the daemon's.
    const options = { fd: LISTEN_FD, backlog: LISTEN_BACKLOG };
    if (args[0] && typeof args[0] === 'object' && args[0].signal) options.signal = args[0].signal;
    const last = args[args.length - 1];
    claimed = true;
    try {
      originalListen.apply(server, typeof last === 'function' ? [options, last] : [options]);
    } catch (err) {
      claimed = false;
      throw err;
    }
    // A Unix socket opened from an fd has no name in Node; give address() the path.
    if (unixPath && server._handle && !server._handle.getsockname) server._pipeName = unixPath;
    server.once('listening', () => sharing.add(server)); // after the app's own listen callback
    return server;
  }

  return { takes, listen, free };
}

// A Node process between Kelpie and the app's server (npm running `node server.js`): Node
// starts children with only their stdio, so the socket at fd 3 would not reach the server.
// While this process has not listened on it itself, every child it starts with at most three
// stdio entries (and no IPC channel) gets fd 3 as a fourth: the server below finds it there.
function passSocketOn(fd) {
  const { ChildProcess } = require('child_process');
  const spawn = ChildProcess.prototype.spawn;
  ChildProcess.prototype.spawn = function spawnWithSocket(options) {
    if (fd.free() && options && typeof options === 'object') {
      let stdio = options.stdio === undefined ? 'pipe' : options.stdio;
      if (typeof stdio === 'string') stdio = [stdio, stdio, stdio];
      if (Array.isArray(stdio) && stdio.length <= 3 && !stdio.includes('ipc')) {
        stdio = stdio.slice();
        while (stdio.length < 3) stdio.push('pipe');
        stdio.push(LISTEN_FD);
        options = Object.assign({}, options, { stdio });
      }
    }
    return spawn.call(this, options);
  };
}

// The port and host a listen() call asks for, if it is one the daemon should share: a TCP
// port other than 0, not `exclusive` (Node's cluster lets such a worker bind by itself).
function claimTarget(args) {
  const first = args[0];
  let port;
  let host;
  if (first !== null && typeof first === 'object') {
    if (first.fd != null || first.handle || first._handle || first.path != null || first.exclusive === true) {
      return null;
    }
    port = first.port;
    host = first.host;
  } else {
    port = first;
    host = typeof args[1] === 'string' ? args[1] : undefined;
  }
  if (typeof port === 'string' && port.trim() !== '') port = Number(port);
  if (typeof port !== 'number' || !Number.isInteger(port) || port <= 0 || port > 65535) return null;
  return { port, host: host || undefined };
}

// Asking the daemon for the socket of a port, over the IPC channel: it answers with the socket
// as a handle (NODE_HANDLE, which Node acknowledges by itself), or with the error of its bind.
class Claims {
  constructor(originalListen) {
    this.originalListen = originalListen;
    this.seq = 0;
    this.waiting = new Map(); // seq -> (message, handle) => void
    process.on('internalMessage', (message, handle) => {
      if (!message || message.cmd !== 'NODE_KELPIE_SOCKET') return;
      const answer = this.waiting.get(message.seq);
      if (answer) {
        this.waiting.delete(message.seq);
        answer(message, handle);
      } else if (handle) {
        handle.close();
      }
    });
  }

  listen(server, target, args, sharing) {
    const last = args[args.length - 1];
    if (typeof last === 'function') server.once('listening', last);
    // Until the answer, nothing of the app's may keep the event loop alive: this does.
    const keepAlive = setInterval(() => {}, 1 << 30);
    const fail = (err) => {
      clearInterval(keepAlive);
      server.emit('error', err);
    };
    resolveHost(target.host, (err, host) => {
      if (err) return fail(err);
      const seq = ++this.seq;
      const late = setTimeout(() => {
        if (!this.waiting.delete(seq)) return;
        clearInterval(keepAlive);
        process.emitWarning(`kelpie: no socket for port ${target.port} from the daemon; listening alone`);
        this.originalListen.call(server, { port: target.port, host });
      }, ANSWER_WITHIN_MS);
      this.waiting.set(seq, (message, handle) => {
        clearInterval(keepAlive);
        clearTimeout(late);
        if (!handle) return fail(listenError(message, target));
        if (server._handle) { // listened some other way meanwhile
          handle.close();
          return;
        }
        server.once('listening', () => sharing.add(server)); // after the app's own callback
        try {
          this.originalListen.call(server, handle, LISTEN_BACKLOG);
        } catch (e) {
          handle.close();
          fail(e);
        }
      });
      try {
        process.send({ kelpie: 'listen', seq, port: target.port, host }, (e) => {
          if (e && this.waiting.delete(seq)) fail(e);
        });
      } catch (e) {
        if (this.waiting.delete(seq)) fail(e);
      }
    });
    return server;
  }
}

// The address to ask the daemon for: an IP as given, or the first address of a name (as Node
// itself looks a host up before it binds); none means every address.
function resolveHost(host, done) {
  if (!host) return process.nextTick(done, null, undefined);
  const net = require('net');
  if (net.isIP(host)) return process.nextTick(done, null, host);
  require('dns').lookup(host, (err, ip) => done(err, ip));
}

// The error Node gives for a listen that fails (`listen EADDRINUSE: address already in use`).
function listenError(message, target) {
  const code = message.code || 'EIO';
  const host = target.host || '::';
  const err = new Error(`listen ${code}: ${message.message || 'cannot listen'} ${host}:${target.port}`);
  err.code = code;
  err.errno = message.errno;
  err.syscall = 'listen';
  err.address = host;
  err.port = target.port;
  return err;
}

// The servers listening on a socket the daemon shares, and how they drain.
class Sharing {
  constructor(net, stopSignal) {
    this.net = net;
    this.stopSignal = stopSignal;
    this.servers = new Set();
    this.stopping = false;
    this.onSignal = () => {
      if (process.listenerCount(this.stopSignal) > 1) return this.closeDoors(); // the app's call
      if (!this.stopping) return this.stop();
      // Asked again while draining: die of the signal, as the app would have without us.
      process.removeListener(this.stopSignal, this.onSignal);
      process.kill(process.pid, this.stopSignal);
    };
    this.onMessage = (message) => {
      if (message !== 'shutdown') return;
      if (process.listenerCount('message') === 1) this.stop();
      else this.closeDoors(); // the app handles it: its call
    };
    this.drainers = new Map(); // server -> Drainer
    this.reported = 0;
    this.reporter = null;
    this.onBalance = (message) => {
      if (message && message.cmd === 'NODE_KELPIE_BALANCE' && !this.stopping) this.shed(message.keep);
    };
  }

  connections() {
    let n = 0;
    for (const server of this.servers) n += server._connections || 0;
    return n;
  }

  // Say how many connections we hold: every REPORT_MS while there are any (the daemon
  // compares with the other instances' reports), and once when there are none left.
  report() {
    if (this.stopping || !process.connected) return;
    const n = this.connections();
    if (n === 0 && this.reported === 0) return;
    this.reported = n;
    try {
      process.send({ kelpie: 'connections', n }, () => {});
    } catch (_) {}
  }

  // Told to keep `keep` connections: mark the excess to close after their next response.
  shed(keep) {
    let excess = this.connections() - (Number(keep) || 0);
    for (const drainer of this.drainers.values()) {
      if (excess <= 0) break;
      excess -= drainer.shed(excess);
    }
  }

  add(server) {
    const drainer = new Drainer(this.net, server);
    this.drainers.set(server, drainer);
    // The app closing the server itself (its own graceful shutdown) drains too: Node's
    // http.Server#close (>= 19) would drop idle keep-alive connections at once, racing with
    // clients sending a request on them.
    server.close = function close(...args) {
      drainer.drain();
      if (drainer.closedByUs) {
        const done = args[args.length - 1];
        if (typeof done === 'function') {
          if (server.listening || server._connections > 0) server.once('close', () => done());
          else setImmediate(done);
        }
        return server;
      }
      return drainer.netClose(args);
    };
    server.once('close', () => this.remove(server));
    this.servers.add(server);
    if (this.servers.size === 1) {
      // Installed only while a shared server is open, so that the app's behaviour is unchanged
      // otherwise: a signal listener turns off Node's default exit, and a 'message' listener
      // keeps the IPC channel (and so the process) alive, which an open server does anyway.
      // First, so that no new connection comes in while the app's own handler runs.
      process.prependListener(this.stopSignal, this.onSignal);
      if (process.send) {
        process.prependListener('message', this.onMessage);
        process.on('internalMessage', this.onBalance);
        this.reporter = setInterval(() => this.report(), REPORT_MS);
        this.reporter.unref();
      }
    }
    if (process.send && process.connected) {
      try {
        process.send({ kelpie: 'listening', address: server.address() }, () => {});
      } catch (_) {} // no channel after all: the daemon will see the instance some other way
    }
  }

  remove(server) {
    this.drainers.delete(server);
    if (!this.servers.delete(server) || this.servers.size > 0) return;
    process.removeListener(this.stopSignal, this.onSignal);
    process.removeListener('message', this.onMessage);
    process.removeListener('internalMessage', this.onBalance);
    clearInterval(this.reporter);
    // Stopped by us, the app had no say: exit once the last shared server closed.
    if (this.stopping) setImmediate(() => process.exit(0));
  }

  stop() {
    this.stopping = true;
    for (const server of [...this.servers]) server.close();
  }

  // Told to stop, with a handler of the app's that decides the rest: take no new connection
  // (the other instances do) and drain the open ones; the app exits when it wants to.
  closeDoors() {
    for (const drainer of this.drainers.values()) drainer.closeDoors();
  }
}

// One shared server's drain: stop accepting (this instance only: the others keep accepting
// from the same socket), answer what comes on open connections with `Connection: close`, and
// close connections once idle past the grace.
class Drainer {
  constructor(net, server) {
    this.net = net;
    this.server = server;
    this.draining = false;
    this.sessions = null;
    // Connections are tracked only from the drain on, through the list Node's http server
    // keeps itself (Node >= 18.14): watching every connection and request from the start cost
    // ~15% of the throughput of a hello world with a new connection per request. Without that
    // list (older Node, or a plain net server), fall back to watching connections from the start.
    this.tracked = this.nodeList() ? null : new Set();
    if (this.isHttp2()) {
      this.sessions = new Set();
      server.on('session', (session) => {
        this.sessions.add(session);
        session.once('close', () => this.sessions.delete(session));
      });
    } else if (this.tracked) {
      server.on(typeof server.setSecureContext === 'function' ? 'secureConnection' : 'connection', (socket) => {
        this.tracked.add(socket);
        socket.once('close', () => this.tracked.delete(socket));
      });
    }
    this.seen = new WeakMap(); // socket -> { since, read }
    this.shedding = false; // our 'request' listener that closes marked connections is installed
    this.closedByUs = false; // closeDoors() stopped the accepting, not the app
  }

  // Stop accepting and drain, for a stop the app handles itself. The app may still call
  // `server.close(cb)` afterwards, as its own shutdown does: it gets its 'close' then, not
  // the ERR_SERVER_NOT_RUNNING of a second close.
  closeDoors() {
    if (this.closedByUs || !this.server.listening) return;
    this.closedByUs = true;
    this.drain();
    this.netClose([]);
  }

  isHttp2() {
    const type = this.server.constructor;
    return Boolean(type) && /^Http2(Secure)?Server$/.test(type.name);
  }

  nodeList() {
    const key = Object.getOwnPropertySymbols(this.server).find((k) => k.description === 'http.server.connections');
    const list = key && this.server[key];
    return list && typeof list.all === 'function' ? list : null;
  }

  sockets() {
    if (this.tracked) return [...this.tracked];
    const list = this.nodeList();
    return list ? list.all().map((parser) => parser.socket).filter(Boolean) : [];
  }

  // A connection is busy while a response is outstanding (Node sets `_httpMessage` until the
  // response finishes), and idle when it is not and has received no byte since we last looked
  // (bytes received mean a request is on its way: it will be answered, with
  // `Connection: close`). Idle past the grace, it is closed.
  sweep() {
    const now = performance.now();
    const expired = [];
    const busy = (socket) => Boolean(socket._httpMessage);
    for (const socket of this.sockets()) {
      const state = this.seen.get(socket);
      if (!state || busy(socket) || socket.bytesRead !== state.read) {
        this.seen.set(socket, { since: now, read: socket.bytesRead });
      } else if (now - state.since >= IDLE_GRACE_MS) {
        expired.push(socket);
      }
    }
    // A late timer may run before Node has read a request the kernel already holds: close
    // them on setImmediate, after the event loop's next read phase, if they are still idle.
    const stillIdle = (socket) => !busy(socket) && socket.bytesRead === this.seen.get(socket).read;
    if (expired.length) setImmediate(() => expired.forEach((s) => stillIdle(s) && s.destroy()));
  }

  drain() {
    if (this.draining) return;
    this.draining = true;
    const server = this.server;
    if (this.sessions) {
      // HTTP/2: GOAWAY on every session; each ends once its streams are done.
      for (const session of this.sessions) session.close();
      return;
    }
    const http = server.listenerCount('request') > 0;
    if (!http) return; // other protocols' connections are the app's; the kill timeout bounds them
    // Every response from now on, and the ones in progress that have not started, carry
    // `Connection: close`.
    server.prependListener('request', (req, res) => { res.shouldKeepAlive = false; });
    for (const socket of this.sockets()) {
      const res = socket._httpMessage;
      if (res && !res.headersSent) res.shouldKeepAlive = false;
    }
    this.sweep();
    const timer = setInterval(() => this.sweep(), SWEEP_MS);
    timer.unref();
    server.once('close', () => clearInterval(timer));
  }

  // Have up to `count` more HTTP/1 connections closed after their next response (the ones
  // marked before and still open count too); returns how many are marked. HTTP/2 sessions
  // and other protocols are left as they are.
  shed(count) {
    const server = this.server;
    if (this.sessions || this.draining || server.listenerCount('request') === 0) return 0;
    const open = this.sockets().filter((socket) => !socket.destroyed);
    let marked = open.filter((socket) => socket[SHED]).length;
    if (marked >= count) return marked;
    if (!this.shedding) {
      this.shedding = true;
      server.prependListener('request', (req, res) => {
        if (req.socket && req.socket[SHED]) res.shouldKeepAlive = false;
      });
    }
    for (const socket of open) {
      if (marked >= count) break;
      if (socket[SHED]) continue;
      socket[SHED] = true;
      const res = socket._httpMessage;
      if (res && !res.headersSent) res.shouldKeepAlive = false;
      marked++;
    }
    return marked;
  }

  // net's close, not http's (see Sharing#add): stops accepting; 'close' once every connection
  // ended. Closing a server that is not listening gives its callback ERR_SERVER_NOT_RUNNING,
  // as Node does.
  netClose(args) {
    const server = this.server;
    const key = Object.getOwnPropertySymbols(server)
      .find((k) => k.description === 'http.server.connectionsCheckingInterval');
    if (key) server.once('close', () => clearInterval(server[key])); // what http's close would clear
    return this.net.Server.prototype.close.apply(server, args);
  }
}

// Wraps Node's entry point runner (`Module.runMain`, what `node app.js` calls once the
// preloads have run) to say when the main module has run. A CommonJS main has run when it
// returns. An ES module main is loaded and evaluated asynchronously: importing the same URL
// again gives the same module record, whose promise settles once its evaluation (top-level
// awaits included) is over; it is never evaluated twice. The URL is made as Node makes it
// (extension lookup, then the real path unless --preserve-symlinks-main); should anything not
// be as expected, the shim says nothing and the daemon's listen_timeout stands in for it.
function reportMainRan() {
  if (typeof process.send !== 'function') return;
  const Module = require('module');
  const runMain = Module.runMain;
  if (typeof runMain !== 'function') return;
  const say = () => tellTheDaemon({ kelpie: 'main-ran' });
  let wrapped = true;
  Module.runMain = function kelpieRunMain(...args) {
    Module.runMain = runMain;
    const result = runMain.apply(this, args);
    if (!wrapped) return result;
    wrapped = false;
    if (process.mainModule) {
      say(); // CommonJS: the main module's code has run
    } else {
      const url = mainModuleUrl(args[0] || process.argv[1]);
      if (url) import(url).then(say, () => {});
    }
    return result;
  };
}

function mainModuleUrl(main) {
  try {
    const path = require('path');
    let file = require('module')._findPath(path.resolve(main), null, true);
    if (!file) return null;
    if (!process.execArgv.includes('--preserve-symlinks-main')) file = require('fs').realpathSync(file);
    return require('url').pathToFileURL(file).href;
  } catch (_) {
    return null;
  }
}

// What PM2's process container tells its manager about every Node app, whether or not the app
// uses @pm2/io: its Node version ({node_version}, kept in `jlist`), and each uncaught exception
// ({type: 'process:exception', data: {message, stack, name, ...its own properties}}, on the
// bus for the notifiers that follow it). Unhandled rejections too: Node turns them into
// uncaught exceptions. Watched with 'uncaughtExceptionMonitor', which changes nothing of what
// Node does next (print, exit 1). An app with @pm2/io sends its own exceptions: not twice. And
// the runtime metrics PM2's agent gives, and what it says of itself in `axm_options` (both in
// node-metrics.js, which launch.rs puts before this file).
function reportToTheManager() {
  if (typeof process.send !== 'function') return;
  const send = tellTheDaemon;
  const sendAtStart = (message) => startMessages.hold(message);
  sendAtStart({ node_version: process.versions.node });
  process.on('uncaughtExceptionMonitor', (err) => {
    if (global[Symbol.for('@pm2/io')]) return;
    send({ type: 'process:exception', data: exceptionData(err) });
  });
  // `pmx: false` (`--no-pmx`) turns them off, as it turns PM2's agent off.
  const metrics = process.env.KELPIE_NODE_METRICS !== '0';
  delete process.env.KELPIE_NODE_METRICS;
  if (metrics) {
    reportAgentOptions(sendAtStart);
    reportRuntimeMetrics(send); // node-metrics.js
  }
}

// What the shim says once at start (the Node version, the agent's options) waits for the main
// module to have run, and goes with `main-ran` in one message ({kelpie: 'batch', messages}):
// Node writes each `process.send` on its own, and the daemon, on another core, would wake up
// for each (about 0.05 ms of its CPU per start, which a crash loop pays at every restart). Any
// other message sends them first (an exception in the main module), and so does the first turn
// of the event loop (an ES module main, reported only once its evaluation is over).
const startMessages = {
  held: [],
  hold(message) {
    if (this.held.length === 0) setImmediate(() => this.flush());
    this.held.push(message);
  },
  // What is held, then `message` if given, in one write.
  flush(message) {
    const messages = message === undefined ? this.held : [...this.held, message];
    this.held = [];
    if (messages.length > 1) sendNow({ kelpie: 'batch', messages });
    else if (messages.length === 1) sendNow(messages[0]);
  },
};

// A message to the daemon over the IPC channel, after what the shim holds from its start.
function tellTheDaemon(message) {
  startMessages.flush(message);
}

// Never throws: with no channel any more, there is nobody to tell.
function sendNow(message) {
  try {
    if (process.connected) process.send(message, () => {});
  } catch (_) {}
}

function exceptionData(err) {
  if (!(err instanceof Error)) {
    let text;
    try { text = JSON.stringify(err); } catch (_) { text = String(err); }
    return { message: `Non-error value: ${text}`, stack: `Non-error value: ${text}` };
  }
  const data = { message: err.message, stack: err.stack, name: err.name };
  for (const key of Object.getOwnPropertyNames(err)) {
    if (key in data) continue;
    const value = err[key];
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) data[key] = value;
  }
  return data;
}

// Last: the classes above are only defined once their declarations have run.
try {
  reportToTheManager();
} catch (_) {}
try {
  answerInspections(); // node-inspection.js
} catch (_) {}
try {
  reportMainRan();
} catch (err) {
  try { process.emitWarning(`kelpie shim: cannot tell when the main module ran: ${err && err.message}`); } catch (_) {}
}
try {
  install();
} catch (err) {
  // A broken shim must never take the app down: carry on as if it were not there.
  try { process.emitWarning(`kelpie shim disabled: ${err && err.message}`); } catch (_) {}
}
