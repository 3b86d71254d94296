#!/usr/bin/env node
// Packs Kelpie's npm packages from release binaries: one package per platform binary given
// (@kelpie/<platform>, the binary at bin/kelpie) and the main `kelpie` package (npm/kelpie, with
// the man page `kelpie man` prints). Node's standard library and the npm CLI only.
//
//   node npm/pack.mjs --out DIR --binary linux-x64-gnu=PATH [--binary linux-x64-musl=PATH ...]
//
// Each binary must be the version of the Cargo workspace (Cargo.toml) and of
// npm/kelpie/package.json: one that runs here must print its version for --version; one
// built for another machine is checked for its format (OS, architecture, libc). The tarballs'
// paths are printed on stdout, one a line, the platform packages first.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.dirname(here);
const mainSource = path.join(here, 'kelpie');
// One table of platforms, shared with the launcher that looks for them.
const { PLATFORMS, packageName } = require(path.join(mainSource, 'lib', 'binary.js'));

const USAGE =
  'usage: node npm/pack.mjs --out DIR --binary PLATFORM=PATH [--binary PLATFORM=PATH ...]\n' +
  `  PLATFORM: ${Object.keys(PLATFORMS).join(', ')}`;

class Refusal extends Error {}

function parseArgs(argv) {
  let out = null;
  const binaries = new Map();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Refusal(`${arg} needs a value\n${USAGE}`);
      return argv[++i];
    };
    if (arg === '--out') {
      out = value();
    } else if (arg === '--binary') {
      const spec = value();
      const eq = spec.indexOf('=');
      if (eq < 0) throw new Refusal(`--binary ${spec}: expected PLATFORM=PATH\n${USAGE}`);
      const key = spec.slice(0, eq);
      const file = spec.slice(eq + 1);
      if (!Object.prototype.hasOwnProperty.call(PLATFORMS, key)) {
        throw new Refusal(`--binary ${spec}: unknown platform \`${key}\`\n${USAGE}`);
      }
      if (binaries.has(key)) throw new Refusal(`--binary: platform \`${key}\` given twice`);
      if (!fs.existsSync(file) || !fs.statSync(file).isFile()) {
        throw new Refusal(`--binary ${spec}: ${file} is not a file`);
      }
      binaries.set(key, path.resolve(file));
    } else if (arg === '-h' || arg === '--help') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else {
      throw new Refusal(`unknown argument \`${arg}\`\n${USAGE}`);
    }
  }
  if (out === null) throw new Refusal(`--out is required\n${USAGE}`);
  if (binaries.size === 0) throw new Refusal(`at least one --binary is required\n${USAGE}`);
  return { out: path.resolve(out), binaries };
}

/** The `version` of Cargo.toml's [workspace.package]. */
function cargoVersion() {
  const toml = fs.readFileSync(path.join(repo, 'Cargo.toml'), 'utf8');
  const section = toml.split(/^\[/m).find((s) => s.startsWith('workspace.package]'));
  const match = section && section.match(/^version\s*=\s*"([^"]+)"/m);
  if (!match) throw new Refusal('Cargo.toml has no version in [workspace.package]');
  return match[1];
}

/** npm/kelpie/package.json, checked against the Cargo version and the platform table. */
function mainManifest(version) {
  const file = path.join(mainSource, 'package.json');
  const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (manifest.version !== version) {
    throw new Refusal(
      `${file} has version ${manifest.version} but Cargo.toml's workspace version is ` +
        `${version}: set both to the version being released`
    );
  }
  for (const key of Object.keys(PLATFORMS)) {
    const wanted = manifest.optionalDependencies && manifest.optionalDependencies[packageName(key)];
    if (wanted !== version) {
      throw new Refusal(
        `${file}: optionalDependencies["${packageName(key)}"] is ${wanted}, not ${version}`
      );
    }
  }
  return manifest;
}

/**
 * What the binary's header says it is built for: { os, cpu, libc } (glibc when it asks for
 * glibc's loader, musl when it asks for musl's or none: static).
 */
function binaryFormat(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.length >= 64 && bytes.readUInt32BE(0) === 0x7f454c46) {
    if (bytes[4] !== 2 || bytes[5] !== 1) return { error: 'an ELF that is not 64-bit little-endian' };
    const machine = { 0x3e: 'x64', 0xb7: 'arm64' }[bytes.readUInt16LE(0x12)];
    const phoff = Number(bytes.readBigUInt64LE(0x20));
    const phentsize = bytes.readUInt16LE(0x36);
    const phnum = bytes.readUInt16LE(0x38);
    let interpreter = null;
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (bytes.readUInt32LE(at) === 3 /* PT_INTERP */) {
        const offset = Number(bytes.readBigUInt64LE(at + 8));
        const size = Number(bytes.readBigUInt64LE(at + 32));
        interpreter = bytes.toString('latin1', offset, offset + size).replace(/\0+$/, '');
      }
    }
    const libc = interpreter === null || interpreter.includes('ld-musl') ? 'musl' : 'glibc';
    return { os: 'linux', cpu: machine || 'unknown', libc, interpreter };
  }
  // Mach-O, 64-bit, little-endian (MH_MAGIC_64 as written by both darwin targets).
  if (bytes.length >= 32 && bytes.readUInt32LE(0) === 0xfeedfacf) {
    const machine = { 0x01000007: 'x64', 0x0100000c: 'arm64' }[bytes.readUInt32LE(4)];
    const fileType = bytes.readUInt32LE(12);
    if (fileType !== 2 /* MH_EXECUTE */) return { error: 'a Mach-O file that is not an executable' };
    return { os: 'darwin', cpu: machine || 'unknown', libc: null, interpreter: null };
  }
  return { error: 'not a 64-bit ELF or Mach-O executable (kelpie is built for Linux and macOS)' };
}

/** Refuse a binary that is not for `key`'s platform or not of `version`. */
function checkBinary(key, file, version) {
  const platform = PLATFORMS[key];
  const format = binaryFormat(file);
  if (format.error) throw new Refusal(`--binary ${key}=${file}: ${format.error}`);
  const expected = { os: platform.os, cpu: platform.cpu, libc: platform.libc };
  for (const field of ['os', 'cpu', 'libc']) {
    if (format[field] !== expected[field]) {
      const libc = format.libc === null ? '' : ` (${format.libc})`;
      throw new Refusal(
        `--binary ${key}=${file}: built for ${format.os} ${format.cpu}${libc}, not ` +
          `${platform.description}`
      );
    }
  }
  // A binary of another system is never run: Linux's execvp hands a Mach-O it cannot execute to
  // /bin/sh, whose failure would read as a wrong version.
  if (format.os !== process.platform || format.cpu !== process.arch) {
    process.stderr.write(
      `pack: ${key}: ${file} is for ${format.os} ${format.cpu}, not this machine; its format is ` +
        'checked, its version is not\n'
    );
    return false;
  }
  const run = spawnSync(file, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (run.error || run.status === 126 || run.status === 127) {
    const why = run.error ? run.error.message : `exit status ${run.status}`;
    process.stderr.write(
      `pack: ${key}: ${file} does not run here (${why}); its format is checked, its version is not\n`
    );
    return false;
  }
  const printed = run.stdout.trim();
  if (run.status !== 0 || printed !== version) {
    throw new Refusal(
      `--binary ${key}=${file}: \`--version\` printed \`${printed}\`` +
        `${run.status !== 0 ? ` (exit status ${run.status})` : ''}, not \`${version}\``
    );
  }
  return true;
}

/** `kelpie man` of a binary that runs here: the roff page (refused when it gives none). */
function manPage(file) {
  const run = spawnSync(file, ['man'], { encoding: 'utf8', timeout: 10_000 });
  if (run.status === 0 && run.stdout.length > 0) return run.stdout;
  let why;
  if (run.error) why = `failed: ${run.error.message}`;
  else if (run.status !== 0) why = `failed (exit status ${run.status}): ${run.stderr.trim().split('\n')[0]}`;
  else why = 'printed nothing';
  throw new Refusal(`no man page: \`${file} man\` ${why} (a kelpie older than its \`man\` command?)`);
}

function writeJson(file, value) {
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

function platformReadme(key, version) {
  return (
    `# ${packageName(key)}\n\n` +
    `The \`kelpie\` ${version} binary for ${PLATFORMS[key].description}, at \`bin/kelpie\`.\n\n` +
    'Install [`kelpie`](https://www.npmjs.com/package/kelpie) instead: it depends on this ' +
    'package (optionally, for this platform only) and runs the binary.\n'
  );
}

/** Stage @kelpie/<key> in `dir`. */
function stagePlatform(dir, key, binary, version) {
  const platform = PLATFORMS[key];
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  const target = path.join(dir, 'bin', 'kelpie');
  fs.copyFileSync(binary, target);
  fs.chmodSync(target, 0o755);
  const manifest = {
    name: packageName(key),
    version,
    description: `The kelpie binary for ${platform.description}; install \`kelpie\` instead.`,
    license: 'MIT OR Apache-2.0',
    os: [platform.os],
    cpu: [platform.cpu],
    ...(platform.libc === null ? {} : { libc: [platform.libc] }),
    files: ['bin/kelpie'],
    // Yarn's Plug'n'Play must unpack it: a binary is run from the disk.
    preferUnplugged: true,
  };
  writeJson(path.join(dir, 'package.json'), manifest);
  fs.writeFileSync(path.join(dir, 'README.md'), platformReadme(key, version));
}

/** Stage the main package in `dir`: npm/kelpie's packed files, and the man page if any. */
function stageMain(dir, manifest, page) {
  fs.mkdirSync(dir, { recursive: true });
  for (const entry of ['bin', 'lib', 'README.md']) {
    const source = path.join(mainSource, entry);
    if (fs.existsSync(source)) fs.cpSync(source, path.join(dir, entry), { recursive: true });
  }
  const staged = { ...manifest };
  if (page !== null) {
    fs.mkdirSync(path.join(dir, 'man'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'man', 'kelpie.1'), page);
  } else {
    // The manifest names only files the package has.
    delete staged.man;
  }
  writeJson(path.join(dir, 'package.json'), staged);
}

/** `npm pack` of `dir` into `out`; the tarball's path. */
function npmPack(dir, out) {
  const json = execFileSync(
    'npm',
    ['pack', '--json', '--ignore-scripts', '--pack-destination', out],
    { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }
  );
  const [result] = JSON.parse(json);
  return path.join(out, result.filename);
}

function main() {
  const { out, binaries } = parseArgs(process.argv.slice(2));
  const version = cargoVersion();
  const manifest = mainManifest(version);

  let page = null;
  let ran = false;
  for (const [key, binary] of binaries) {
    if (checkBinary(key, binary, version)) {
      ran = true;
      if (page === null) page = manPage(binary);
    }
  }
  if (!ran) {
    process.stderr.write('pack: no binary runs here, so the package has no man page\n');
  }

  fs.mkdirSync(out, { recursive: true });
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'kelpie-npm-'));
  try {
    const tarballs = [];
    for (const [key, binary] of binaries) {
      const dir = path.join(stage, key);
      stagePlatform(dir, key, binary, version);
      tarballs.push(npmPack(dir, out));
    }
    const dir = path.join(stage, 'kelpie');
    stageMain(dir, manifest, page);
    tarballs.push(npmPack(dir, out));
    process.stdout.write(tarballs.map((t) => `${t}\n`).join(''));
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

try {
  main();
} catch (error) {
  if (!(error instanceof Refusal)) throw error;
  process.stderr.write(`pack: ${error.message}\n`);
  process.exit(1);
}
