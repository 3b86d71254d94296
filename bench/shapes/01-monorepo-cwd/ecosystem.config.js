module.exports = {
  apps: [
    { name: 'web', script: 'server.js', cwd: './apps/web', env: { NODE_ENV: 'production' } },
    { name: 'api', script: 'server.js', cwd: './apps/api', env: { NODE_ENV: 'production', API_MODE: 'rest' } },
  ],
};
