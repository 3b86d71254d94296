module.exports = {
  apps: [
    { name: 'deno-api', script: 'main.ts', interpreter: 'deno', interpreter_args: 'run --allow-net --allow-env',
      env: { APP_MODE: 'deno' } },
  ],
};
