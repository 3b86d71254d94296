'use strict';
// Where the kelpie binary is: the per-platform package npm installed as an optional dependency
// (the way esbuild and Biome ship), or the path in KELPIE_BINARY.

const fs = require('fs');
const path = require('path');

/** The variable that overrides the binary (a kelpie you built yourself; the tests use it). */
const BINARY_ENV = 'KELPIE_BINARY';

/**
 * Every platform kelpie is published for: the key used by npm/pack.mjs, the package carrying the
 * binary, and the `os`, `cpu` and `libc` fields npm matches against the machine (macOS has no
 * libc variants: `libc` null). Linux and macOS; Windows is not built (docs/platforms.md).
 */
const PLATFORMS = {
  'linux-x64-gnu': { os: 'linux', cpu: 'x64', libc: 'glibc', description: 'Linux x64 (glibc)' },
  'linux-x64-musl': { os: 'linux', cpu: 'x64', libc: 'musl', description: 'Linux x64 (musl)' },
  'linux-arm64-gnu': { os: 'linux', cpu: 'arm64', libc: 'glibc', description: 'Linux arm64 (glibc)' },
  'linux-arm64-musl': { os: 'linux', cpu: 'arm64', libc: 'musl', description: 'Linux arm64 (musl)' },
  'darwin-arm64': { os: 'darwin', cpu: 'arm64', libc: null, description: 'macOS arm64 (Apple silicon)' },
  'darwin-x64': { os: 'darwin', cpu: 'x64', libc: null, description: 'macOS x64 (Intel)' },
};

/** The npm package that carries the binary of the platform `key`. */
function packageName(key) {
  return `@kelpie/${key}`;
}

/**
 * Whether this Linux runs on musl rather than glibc. Node built against glibc reports the glibc
 * it runs on; Node on musl (Alpine) reports none. Without a report, the musl loader's presence.
 */
function isMusl() {
  try {
    if (process.report && typeof process.report.getReport === 'function') {
      // The network part of the report can take seconds on some machines and is not needed;
      // the setting is the process's (the Node API runs in an app), so it is put back.
      const excludedNetwork = process.report.excludeNetwork;
      let report;
      try {
        if (excludedNetwork !== undefined) process.report.excludeNetwork = true;
        report = process.report.getReport();
      } finally {
        if (excludedNetwork !== undefined) process.report.excludeNetwork = excludedNetwork;
      }
      const header = (typeof report === 'string' ? JSON.parse(report) : report).header;
      return !header.glibcVersionRuntime;
    }
  } catch (_) {
    // Fall through to the file system.
  }
  try {
    return fs.readdirSync('/lib').some((name) => name.startsWith('ld-musl-'));
  } catch (_) {
    return false;
  }
}

/** The PLATFORMS key of the running machine, or null when kelpie is not built for it. */
function platformKey() {
  let key = `${process.platform}-${process.arch}`;
  if (process.platform === 'linux') key += isMusl() ? '-musl' : '-gnu';
  return Object.prototype.hasOwnProperty.call(PLATFORMS, key) ? key : null;
}

/**
 * The path of the kelpie binary to run: KELPIE_BINARY when set, otherwise bin/kelpie of the
 * platform package for this machine. Throws an Error that says what is missing and how to fix
 * it.
 */
function binaryPath() {
  const override = process.env[BINARY_ENV];
  if (override) {
    if (!fs.existsSync(override)) {
      throw new Error(`${BINARY_ENV} is set to ${override}, which does not exist`);
    }
    return path.resolve(override);
  }

  const key = platformKey();
  if (key === null) {
    const supported = Object.keys(PLATFORMS).join(', ');
    if (process.platform !== 'linux' && process.platform !== 'darwin') {
      throw new Error(
        `kelpie runs on Linux and macOS, and this is ${process.platform}: run it in WSL or a ` +
          `Linux container, for example from the Dockerfile in Kelpie's repository. It is ` +
          `published for ${supported}.`
      );
    }
    throw new Error(
      `kelpie is not published for this platform (${process.platform} ${process.arch}); ` +
        `it is for ${supported}. Build it from Kelpie's repository with ` +
        `cargo install --locked --path crates/kelpie-cli, and set ${BINARY_ENV} to the path ` +
        `of the binary.`
    );
  }

  const name = packageName(key);
  let manifest;
  try {
    manifest = require.resolve(`${name}/package.json`);
  } catch (_) {
    throw new Error(
      `the package ${name}, which carries the kelpie binary for ${PLATFORMS[key].description}, ` +
        `is not installed. It is an optional dependency of kelpie, left out when npm runs with ` +
        `--no-optional or --omit=optional: install kelpie again without those options ` +
        `(npm install -g kelpie), or set ${BINARY_ENV} to the path of a kelpie binary.`
    );
  }
  const binary = path.join(path.dirname(manifest), 'bin', 'kelpie');
  if (!fs.existsSync(binary)) {
    throw new Error(
      `the package ${name} is installed at ${path.dirname(manifest)} but has no bin/kelpie: ` +
        `install kelpie again, or set ${BINARY_ENV} to the path of a kelpie binary.`
    );
  }
  return binary;
}

module.exports = { BINARY_ENV, PLATFORMS, packageName, platformKey, binaryPath };
