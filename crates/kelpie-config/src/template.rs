//! The ecosystem file written by `kelpie init`.

/// A commented CommonJS ecosystem file in PM2's style, using only fields Kelpie supports.
pub fn example_ecosystem() -> &'static str {
    EXAMPLE
}

/// The app the example names (`./app.js`), written beside it when there is none, so that the
/// example starts as written: a Node HTTP server on `PORT` (3000 in the example's `env`).
pub fn example_app() -> &'static str {
    EXAMPLE_APP
}

const EXAMPLE_APP: &str = r#"// An example app, written by `kelpie init` beside ecosystem.config.js: replace it with yours.
const http = require('http');
const port = Number(process.env.PORT) || 3000;
http
  .createServer((req, res) => res.end(`hello from ${process.env.name || 'kelpie'}\n`))
  .listen(port, () => console.log(`listening on port ${port}`));
"#;

const EXAMPLE: &str = r#"// Kelpie ecosystem file (PM2-compatible).
//
//   kelpie start ecosystem.config.js                  start every app below
//   kelpie start ecosystem.config.js --only api       start some of them
//   kelpie start ecosystem.config.js --env production also apply `env_production`
//   kelpie deploy production                          ship it to the servers of `deploy`
//
// Field names are PM2's; camelCase spellings (maxMemoryRestart) work too. Unknown fields are
// errors, so typos do not go unnoticed. Reference: docs/configuration.md
module.exports = {
  apps: [
    {
      // Name used by `kelpie restart api`, `kelpie logs api`, ... (default: the script's file
      // name without extension). Names must be unique within the file.
      name: 'api',

      // What to run, relative to `cwd`. The interpreter is chosen by extension (.js node,
      // .py python3, .sh bash, .rb ruby, ...); set `interpreter` to choose, or 'none' to run
      // the file directly. A command line such as 'python3 -m http.server 8000' runs in a shell.
      script: './app.js',

      // Arguments for the script: a list, or a string split like a shell would.
      args: ['--color'],

      // Arguments for the interpreter, placed before the script (PM2's `node_args`).
      // interpreter_args: ['--max-old-space-size=512'],

      // Working directory. Default: the directory of this file (relative paths start there).
      // cwd: '.',

      // Number of processes: a number, or 'max' for one per CPU. As in PM2, setting it for a
      // Node app selects cluster mode: the instances share one port (`port`, or PORT below),
      // which Kelpie listens on and hands to them.
      instances: 1,

      // Restart the app when it exits on its own (except with a code in `stop_exit_codes`).
      autorestart: true,
      // stop_exit_codes: [0],

      // A run shorter than `min_uptime` is unstable; after `max_restarts` unstable runs in a
      // row the app is marked errored and left alone.
      min_uptime: '1s',
      max_restarts: 16,

      // Pause before each automatic restart ('500ms', '10s', '1m' or a number of ms).
      // `exp_backoff_restart_delay: 100` grows the pause instead.
      restart_delay: 0,

      // Stopping sends `kill_signal`, then SIGKILL if the app is still running after
      // `kill_timeout`.
      kill_signal: 'SIGINT',
      kill_timeout: '1600ms',

      // Memory limit for the app: bytes, or a number with a K, M or G suffix.
      max_memory_restart: '300M',

      // Log files, relative to `cwd` (default: Kelpie's log directory, <name>-out.log and
      // <name>-error.log). `merge_logs: true` keeps one file for all instances.
      // out_file: './logs/api-out.log',
      // error_file: './logs/api-error.log',

      // Environment variables. They override the environment of the shell that runs
      // `kelpie start`; numbers and booleans become strings.
      env: {
        NODE_ENV: 'development',
        PORT: 3000,
      },

      // Selected with `--env production`: merged over `env` (these values win).
      // Any `env_<name>` works the same way with `--env <name>`.
      env_production: {
        NODE_ENV: 'production',
      },
    },
  ],

  // `kelpie deploy production setup`, then `kelpie deploy production`: each server gets a new
  // release from `repo`, started (or reloaded) by `post-deploy`, and goes live only once its
  // apps are ready. PM2's keys and commands. Reference: docs/deploy.md
  deploy: {
    production: {
      user: 'deploy',
      host: ['your-server.example.com'],
      ref: 'origin/main',
      repo: 'git@github.com:you/your-app.git',
      path: '/srv/your-app',
      'post-deploy': 'npm ci --omit=dev && kelpie startOrReload ecosystem.config.js --env production',
    },
  },
};
"#;
