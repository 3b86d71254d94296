module.exports = {
  apps: [
    { name: 'app', script: 'npm', args: 'start -- -H 0.0.0.0', cwd: './apps/app', env: { NODE_ENV: 'production' } },
  ],
};
