module.exports = {
  apps: [
    { name: 'cms', script: 'yarn', args: 'start', instances: 1, autorestart: true, watch: false,
      env: { NODE_ENV: 'development' } },
  ],
};
