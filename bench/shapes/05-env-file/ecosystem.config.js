module.exports = {
  apps: [
    { name: 'backend', script: 'index.js', env_file: '.env', env: { NODE_ENV: 'production' } },
  ],
};
