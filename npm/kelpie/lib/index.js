'use strict';
// Kelpie's programmatic API for Node, shaped like PM2's (`require('pm2')`) for the calls
// people use: connect, start, stop, restart, reload, delete, list, describe, signals, messages
// to processes, the event bus, flush, dump. Every call talks to the daemon's socket directly
// (lib/protocol.js); none spawns the CLI, except `connect` starting a daemon when none runs.
// Each call takes a callback as its last argument (PM2's style) or, without one, returns a
// promise. The differences from PM2's API are in docs/node-api.md.

const { execFile } = require('child_process');
const { EventEmitter } = require('events');
const path = require('path');
const { Connection, KelpieError, defaultHome } = require('./protocol');

/** Make `fn` (which returns a promise) also take a trailing callback, PM2's style. */
function callbackOrPromise(fn) {
  return function (...args) {
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      const callback = args.pop();
      fn.apply(this, args).then((value) => callback(null, value), (err) => callback(err));
      return undefined;
    }
    return fn.apply(this, args);
  };
}

/**
 * What a call acts on, as the daemon's Target: 'all', an id (number or digits), a name or
 * namespace, or a script's path (a word with a slash or a .js/.mjs/.cjs/.py/.rb/.sh ending,
 * resolved from the caller's directory as PM2 does).
 */
function target(process_) {
  if (process_ === undefined || process_ === null || process_ === 'all') return 'All';
  if (typeof process_ === 'number') return { Id: process_ };
  if (typeof process_ !== 'string' || process_ === '') {
    throw new KelpieError('Invalid', `a process is an id, a name, a namespace, a script or 'all', not ${JSON.stringify(process_)}`);
  }
  if (/^\d+$/.test(process_)) return { Id: Number(process_) };
  if (process_.includes('/') || /\.(c|m)?js$|\.(py|rb|sh)$/.test(process_)) {
    return { NameOrScript: { name: process_, script: path.resolve(process_) } };
  }
  return { Name: process_ };
}

/** Whether a jlist entry is one `process_` names (the same rule as `target`). */
function matches(entry, process_) {
  const t = target(process_);
  if (t === 'All') return true;
  if (t.Id !== undefined) return entry.pm_id === t.Id;
  if (t.Name !== undefined) return entry.name === t.Name || entry.pm2_env.namespace === t.Name;
  const { name, script } = t.NameOrScript;
  return entry.name === name || entry.pm2_env.pm_exec_path === script || entry.pm2_env.namespace === name;
}

/**
 * Whether a start argument is an ecosystem file, by its name, as `kelpie start` decides: JSON,
 * YAML or TOML, or JavaScript named `*.config.js` or `ecosystem*.js`.
 */
function isEcosystemFile(arg) {
  const name = path.basename(arg).toLowerCase();
  if (/\.(json|ya?ml|toml)$/.test(name)) return true;
  if (/\.(c|m)?js$/.test(name)) return /\.config\.(c|m)?js$/.test(name) || name.startsWith('ecosystem');
  return false;
}

/** The caller's environment, as the daemon stores it (strings only). */
function callerEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (typeof value === 'string') env[key] = value;
  }
  return env;
}

/** Keys of the API's options that are not app fields. */
const API_ONLY = new Set(['updateEnv', 'force', 'only', 'env_profile']);

/**
 * An app object as an ecosystem file would hold it: the API's own keys and functions left out.
 * camelCase keys (`maxRestarts`) are folded by the daemon's config reader, as in files.
 */
function appOptions(options) {
  const app = {};
  for (const [key, value] of Object.entries(options || {})) {
    if (typeof value !== 'function' && !API_ONLY.has(key)) app[key] = value;
  }
  return app;
}

/** The PM2 release whose commands, files and API Kelpie keeps (what `getVersion` says). */
const PM2_COMPATIBLE_VERSION = '7.0.4';

/** A client of one Kelpie daemon (one home). */
class Kelpie {
  /**
   * @param {object} [options]
   * @param {string} [options.home] the daemon's home (default $KELPIE_HOME, else ~/.kelpie)
   */
  constructor(options = {}) {
    this.home = options.home || defaultHome();
    this.connection = null;
    this.connecting = null;
    this.buses = new Set();
  }

  get socketPath() {
    return path.join(this.home, 'kelpie.sock');
  }

  /** Run `kelpie ping`, which starts a daemon in this home when none runs. */
  _startDaemon() {
    const { binaryPath } = require('./binary');
    return new Promise((resolve, reject) => {
      execFile(binaryPath(), ['ping'], { env: { ...process.env, KELPIE_HOME: this.home } }, (err, _stdout, stderr) => {
        if (err) reject(new KelpieError('Internal', `could not start the kelpie daemon: ${stderr.trim() || err.message}`));
        else resolve();
      });
    });
  }

  /** A new connection, starting the daemon first when none answers. */
  async _open() {
    try {
      return await Connection.open(this.socketPath);
    } catch (err) {
      if (err.code !== 'ENOENT' && err.code !== 'ECONNREFUSED') throw err;
      await this._startDaemon();
      return Connection.open(this.socketPath);
    }
  }

  async _connection() {
    if (this.connection && !this.connection.closed) return this.connection;
    if (!this.connecting) {
      this.connecting = this._open().then((connection) => {
        this.connection = connection;
        return connection;
      }).finally(() => {
        this.connecting = null;
      });
    }
    return this.connecting;
  }

  async _request(request) {
    return (await this._connection()).request(request);
  }

  async _jlist() {
    return (await this._request({ Jlist: { show_secrets: true } })).Json;
  }

  /** The list's entries the targets name, after a command. */
  async _entries(process_) {
    return (await this._jlist()).filter((entry) => matches(entry, process_));
  }
}

Kelpie.prototype.connect = callbackOrPromise(async function (noDaemonMode) {
  // PM2's noDaemonMode runs the apps inside the calling process; Kelpie always has a daemon.
  void noDaemonMode;
  await this._connection();
  return this;
});

/** Close the connection (and the buses), so the calling process can exit. */
Kelpie.prototype.disconnect = function (callback) {
  if (this.connection) this.connection.close();
  this.connection = null;
  for (const bus of this.buses) bus.close();
  if (typeof callback === 'function') process.nextTick(callback, null);
  return typeof callback === 'function' ? undefined : Promise.resolve();
};

/**
 * Start apps: `start(script, [options])`, `start(options)` (one app, as in an ecosystem file,
 * camelCase accepted) or `start(ecosystemFile, [{only, env}])`. Resolves with the started
 * processes (jlist entries).
 */
Kelpie.prototype.start = callbackOrPromise(async function (script, options) {
  let source;
  let opts;
  let fromFile = false;
  if (typeof script === 'string' && isEcosystemFile(script)) {
    opts = options || {};
    source = { File: script };
  } else if (typeof script === 'string') {
    opts = options || {};
    source = { Json: JSON.stringify({ apps: [{ ...appOptions(opts), script }] }) };
  } else if (script && typeof script === 'object') {
    opts = script;
    fromFile = true;
    const apps = Array.isArray(script) ? script : (Array.isArray(script.apps) ? script.apps : [script]);
    source = { Json: JSON.stringify({ apps: apps.map(appOptions) }) };
  } else {
    throw new KelpieError('Invalid', 'start takes a script, an options object or an ecosystem file');
  }
  const only = typeof opts.only === 'string' ? opts.only.split(',') : (opts.only || []);
  const answer = await this._request({
    StartConfig: {
      source,
      cwd: opts.cwd && source.File ? path.resolve(opts.cwd) : process.cwd(),
      env: callerEnv(),
      profile: typeof opts.env === 'string' ? opts.env : (opts.env_profile || null),
      only,
      force: Boolean(opts.force),
      from_file: fromFile,
    },
  });
  const started = answer.Started;
  const ids = new Set();
  for (const outcome of started.outcomes) {
    const list = outcome.Created || outcome.Restarted || outcome.Started || [];
    for (const id of list) ids.add(id);
  }
  const entries = (await this._jlist()).filter((entry) => ids.has(entry.pm_id));
  if (started.failures.length) {
    const err = new KelpieError('Conflict', started.failures.join('; '));
    err.processes = entries;
    throw err;
  }
  return entries;
});

function control(variant) {
  return callbackOrPromise(async function (process_, options = {}) {
    const targets = [target(process_)];
    const updateEnv = options.updateEnv ? callerEnv() : null;
    let request;
    if (variant === 'Restart') request = { Restart: { targets, update_env: updateEnv } };
    else if (variant === 'Reload') request = { Reload: { targets, apps: [], update_env: updateEnv, parallel: 1 } };
    else request = { [variant]: { targets } };
    const before = variant === 'Delete' ? await this._entries(process_) : null;
    await this._request(request);
    return before || this._entries(process_);
  });
}

/** Stop processes (they stay in the list). Resolves with their entries. */
Kelpie.prototype.stop = control('Stop');
/** Restart processes (`{updateEnv: true}` gives them this process's environment). */
Kelpie.prototype.restart = control('Restart');
/** Replace processes without downtime (a restart for apps without a shared port). */
Kelpie.prototype.reload = control('Reload');
/** Stop processes and remove them from the list. Resolves with their entries from before. */
Kelpie.prototype.delete = control('Delete');
/** Zero the restart counters. */
Kelpie.prototype.reset = control('Reset');

/** Every process, in `jlist`'s shape (PM2's process description). */
Kelpie.prototype.list = callbackOrPromise(async function () {
  return this._jlist();
});

/** The processes `process_` names (an id, a name, a namespace), in `jlist`'s shape. */
Kelpie.prototype.describe = callbackOrPromise(async function (process_) {
  return this._entries(process_);
});

Kelpie.prototype.sendSignalToProcessName = callbackOrPromise(async function (signal, name) {
  await this._request({ Signal: { signal: String(signal), targets: [target(String(name))] } });
  return this._entries(String(name));
});

Kelpie.prototype.sendSignalToProcessId = callbackOrPromise(async function (signal, id) {
  await this._request({ Signal: { signal: String(signal), targets: [{ Id: Number(id) }] } });
  return this._entries(Number(id));
});

/**
 * Send `packet` ({topic, data}) to the process with this id: it arrives with
 * `process.on('message')` (Node apps). `sendDataToProcessId(packet)` with `packet.id` works too.
 */
Kelpie.prototype.sendDataToProcessId = callbackOrPromise(async function (id, packet) {
  if (typeof id === 'object' && id !== null && packet === undefined) {
    packet = id;
    id = packet.id;
  }
  if (id === undefined || !packet || packet.data === undefined || !packet.topic) {
    throw new KelpieError('Invalid', 'sendDataToProcessId needs an id and a packet with `topic` and `data`');
  }
  const message = { ...packet, id: Number(id) };
  await this._request({ SendMessage: { targets: [{ Id: Number(id) }], message } });
  return { success: true, data: message };
});

/** Empty the log files of processes (all without an argument). */
Kelpie.prototype.flush = callbackOrPromise(async function (process_) {
  const targets = process_ === undefined || process_ === 'all' ? [] : [target(process_)];
  return (await this._request({ Flush: { targets } })).Done;
});

/** Save the list for `resurrect` and boot (`kelpie save`). */
Kelpie.prototype.dump = callbackOrPromise(async function (force) {
  return (await this._request({ Save: { force: Boolean(force) } })).Done;
});

/** Reopen every log file (after an external rotation). */
Kelpie.prototype.reloadLogs = callbackOrPromise(async function () {
  return (await this._request('ReloadLogs')).Done;
});

/** Stop every app, forget them, and stop the daemon. */
Kelpie.prototype.killDaemon = callbackOrPromise(async function () {
  const answer = await this._request('Kill');
  this.disconnect();
  return answer.Done;
});

/**
 * The event bus: an EventEmitter with PM2's events: `process:event` ({event, process, at}:
 * online, exit, restart, stop, errored, delete), `log:out` and `log:err` ({process, data, at}),
 * and the `{type, data}` messages processes send, under their type (`process:msg`...).
 * Resolves once both streams are open; `bus.close()` ends them.
 */
Kelpie.prototype.launchBus = callbackOrPromise(async function () {
  const bus = new EventEmitter();
  const events = await this._open();
  const logs = await this._open();
  let open = 2;
  const ended = (frame, err) => {
    if (frame !== null) return false;
    if (err && bus.listenerCount('error')) bus.emit('error', err);
    open -= 1;
    if (open === 0) {
      this.buses.delete(bus);
      bus.emit('close');
    }
    return true;
  };
  // The daemon's first event says the subscription is in place: launchBus resolves then, so a
  // message sent right after (an action triggered) cannot answer before the bus listens.
  let subscribed;
  const inPlace = new Promise((resolve) => { subscribed = resolve; });
  events.stream('Events', (frame, err) => {
    if (ended(frame, err)) {
      subscribed();
      return;
    }
    if (!frame.Event) return;
    const event = frame.Event;
    if (event.event === 'subscribed') {
      subscribed();
      return;
    }
    if (event.event === 'kill') {
      bus.emit('pm2:kill', { status: 'killed', msg: 'kelpie has been killed via CLI' });
      return;
    }
    const process_ = { name: event.name, pm_id: event.pm_id, namespace: event.namespace };
    const at = event.at_ms;
    if (event.event === 'message') {
      // PM2's routing: `{type, data}` under its type; anything else as `process:msg` with `raw`.
      if (event.data.type === undefined && 'raw' in event.data) {
        bus.emit('process:msg', { at, raw: event.data.raw, process: process_ });
      } else {
        bus.emit(event.data.type, { at, data: event.data.data, process: process_ });
      }
      return;
    }
    bus.emit('process:event', {
      event: event.event,
      manually: false,
      at,
      // PM2's shape: the process's description (pm2_env without env: log paths, exec mode,
      // instances, uptime...), then what the event is about.
      process: {
        ...(event.process || {}),
        ...process_,
        status: event.status,
        pid: event.pid,
        restart_time: event.restart_time,
        exit_code: event.exit_code,
        signal: event.signal,
      },
    });
  });
  logs.stream({ Logs: { targets: [], lines: 0, out: true, err: true, follow: true } }, (frame, err) => {
    if (ended(frame, err) || !frame.LogLines) return;
    for (const line of frame.LogLines.lines) {
      const data = typeof line.bytes === 'string' ? line.bytes : Buffer.from(line.bytes.b64, 'base64').toString('utf8');
      bus.emit(line.stream === 'err' ? 'log:err' : 'log:out', {
        process: { name: line.app_name, pm_id: line.pm_id },
        at: line.at_ms,
        data: `${data}\n`,
      });
    }
  });
  bus.close = () => {
    events.close();
    logs.close();
  };
  this.buses.add(bus);
  await inPlace;
  return bus;
});

/**
 * `scale(name, n)`: set the app's number of instances; `'+k'`/`'-k'` add or remove k.
 */
Kelpie.prototype.scale = callbackOrPromise(async function (name, count) {
  const text = String(count).trim();
  const match = /^([+-]?)(\d+)$/.exec(text);
  if (!match) throw new KelpieError('Invalid', `scale takes a number of instances, +N or -N, not ${JSON.stringify(count)}`);
  const n = Number(match[2]);
  const scaleCount = match[1] === '+' ? { up: n } : match[1] === '-' ? { down: n } : { to: n };
  await this._request({ Scale: { name: String(name), count: scaleCount } });
  return { success: true };
});

/**
 * The PM2 version whose behaviour this Kelpie keeps, for tools that check PM2's version
 * (`semver.gte(version, '0.15.11')`); Kelpie's own version is `getKelpieVersion()`.
 */
Kelpie.prototype.getVersion = callbackOrPromise(async function () {
  return PM2_COMPATIBLE_VERSION;
});

/** The daemon's Kelpie version. */
Kelpie.prototype.getKelpieVersion = callbackOrPromise(async function () {
  return (await this._request('Ping')).Pong.version;
});

/** Close the buses only (pm2-intercom calls it; PM2 7 only has it on `pm2.Client`). */
Kelpie.prototype.disconnectBus = function (callback) {
  for (const bus of this.buses) bus.close();
  if (typeof callback === 'function') process.nextTick(callback, null);
  return typeof callback === 'function' ? undefined : Promise.resolve();
};

/**
 * `trigger(process, action, [params])`: run an action the processes registered with @pm2/io
 * (`io.action`) in every running instance that has it; resolves with the replies as PM2's bus
 * packets (`{at, data: {action_name, return}, process}`), one per instance. Gives up after 10 s
 * (`{timeout: ms}` as a fourth argument changes it).
 */
Kelpie.prototype.trigger = callbackOrPromise(async function (process_, action, params, options = {}) {
  const receivers = (await this._jlist()).filter((entry) => matches(entry, process_)
    && ['online', 'launching'].includes(entry.pm2_env.status)
    && (entry.pm2_env.axm_actions || []).some((a) => a.action_name === action));
  if (!receivers.length) {
    throw new KelpieError('NotFound', `Not any process has received a command: no running instance of ${JSON.stringify(process_)} registered the action ${JSON.stringify(action)}`);
  }
  const bus = await this.launchBus();
  try {
    const waiting = new Set(receivers.map((entry) => entry.pm_id));
    const replies = [];
    const done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new KelpieError('Internal', `no reply to ${action} from id ${[...waiting].join(', ')}`)), options.timeout || 10000);
      bus.on('axm:reply', (packet) => {
        if (packet.data && packet.data.action_name === action && waiting.delete(packet.process.pm_id)) {
          replies.push(packet);
          if (!waiting.size) {
            clearTimeout(timer);
            resolve(replies);
          }
        }
      });
    });
    const message = params === undefined || params === null ? action : { msg: action, opts: params, name: String(process_) };
    await this._request({ SendMessage: { targets: receivers.map((entry) => ({ Id: entry.pm_id })), message } });
    return await done;
  } finally {
    bus.close();
  }
});

/** The daemon's version and pid. */
Kelpie.prototype.ping = callbackOrPromise(async function () {
  return (await this._request('Ping')).Pong;
});

const api = new Kelpie();
// PM2's `new pm2.custom({pm2_home})`: a client of another home.
api.custom = function custom(options = {}) {
  return new Kelpie({ home: options.home || options.pm2_home });
};
api.Kelpie = Kelpie;
api.KelpieError = KelpieError;

module.exports = api;
