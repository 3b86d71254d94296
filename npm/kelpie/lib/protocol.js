'use strict';
// The daemon's control socket, spoken from Node: the same framed protocol as the kelpie CLI
// (docs/protocol.md). Each frame is a 4-byte big-endian length and that many bytes of JSON;
// each side first sends a Hello {protocol, version}; then the client sends requests and reads
// one response for each, in order, except for the streams (Logs with follow, Events), which
// keep their connection to themselves.

const net = require('net');
const os = require('os');
const path = require('path');

/** The protocol version this client speaks (kelpie_proto::PROTOCOL_VERSION). */
const PROTOCOL_VERSION = 1;
/** Frames above this are refused, as the daemon does. */
const MAX_FRAME_LEN = 16 * 1024 * 1024;
/** How long to wait for the daemon's Hello, as the CLI does. */
const HELLO_TIMEOUT_MS = 3000;

/** The home a client without options uses: $KELPIE_HOME, else ~/.kelpie. */
function defaultHome() {
  const fromEnv = process.env.KELPIE_HOME;
  if (fromEnv) return fromEnv;
  return path.join(process.env.HOME || os.homedir() || '.', '.kelpie');
}

/** An error the daemon answered with: `kind` is NotFound, Conflict, Invalid, Internal... */
class KelpieError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'KelpieError';
    this.kind = kind;
  }
}

function encode(value) {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Cuts a byte stream into decoded frames. */
class FrameReader {
  constructor() {
    this.buffer = Buffer.alloc(0);
  }

  /** Add bytes; returns the complete frames they finished (throws on a bad frame). */
  push(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    const frames = [];
    while (this.buffer.length >= 4) {
      const length = this.buffer.readUInt32BE(0);
      if (length > MAX_FRAME_LEN) throw new Error(`frame of ${length} bytes refused`);
      if (this.buffer.length < 4 + length) break;
      const body = this.buffer.subarray(4, 4 + length);
      this.buffer = this.buffer.subarray(4 + length);
      frames.push(JSON.parse(body.toString('utf8')));
    }
    return frames;
  }
}

/**
 * One connection to the daemon. `request()` calls are answered in order; `onFrame`, when
 * given, receives every frame after the Hello instead (for the streams).
 */
class Connection {
  constructor(socket) {
    this.socket = socket;
    this.reader = new FrameReader();
    this.waiting = [];
    this.onFrame = null;
    this.closed = false;
    this.closeError = null;
    socket.on('data', (chunk) => this._data(chunk));
    socket.on('error', (err) => this._close(err));
    socket.on('close', () => this._close(null));
  }

  /** Connect to the socket at `socketPath` and exchange Hellos. */
  static open(socketPath) {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      const failed = (err) => {
        socket.destroy();
        reject(err);
      };
      socket.once('error', failed);
      socket.once('connect', () => {
        socket.removeListener('error', failed);
        const connection = new Connection(socket);
        connection.hello().then(() => resolve(connection), (err) => {
          connection.close();
          reject(err);
        });
      });
    });
  }

  async hello() {
    const timer = setTimeout(() => this._close(new Error(
      `the daemon accepted the connection but did not answer within ${HELLO_TIMEOUT_MS / 1000} s`)),
    HELLO_TIMEOUT_MS);
    try {
      const theirs = await this._send({ protocol: PROTOCOL_VERSION, version: require('../package.json').version });
      if (!theirs || theirs.protocol !== PROTOCOL_VERSION) {
        throw new KelpieError('VersionMismatch',
          `this kelpie package (protocol ${PROTOCOL_VERSION}) and the daemon (v${theirs && theirs.version}, protocol ${theirs && theirs.protocol}) do not speak the same protocol; run \`kelpie update\` with the newest kelpie`);
      }
      this.daemonVersion = theirs.version;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Send a request; resolves with the response's variant and value: `{Done: "..."}`. */
  async request(request) {
    const response = await this._send(request);
    if (response && typeof response === 'object' && response.Error) {
      throw new KelpieError(response.Error.kind, response.Error.message);
    }
    return response;
  }

  /** Send a request whose answer is a stream of frames, each given to `onFrame`. */
  stream(request, onFrame) {
    this.onFrame = onFrame;
    this.socket.write(encode(request));
  }

  close() {
    this.socket.end();
    this.socket.destroy();
    this._close(null);
  }

  _send(message) {
    if (this.closed) return Promise.reject(this.closeError || new Error('the connection to the kelpie daemon is closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(encode(message));
    });
  }

  _data(chunk) {
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this._close(err);
      this.socket.destroy();
      return;
    }
    for (const frame of frames) {
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve(frame);
      else if (this.onFrame) this.onFrame(frame);
    }
  }

  _close(err) {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err || new Error('the kelpie daemon closed the connection');
    for (const waiter of this.waiting.splice(0)) waiter.reject(this.closeError);
    if (this.onFrame) this.onFrame(null, err);
  }
}

module.exports = { Connection, FrameReader, KelpieError, PROTOCOL_VERSION, defaultHome, encode };
