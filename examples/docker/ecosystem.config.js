// The apps of the example image: the Dockerfile at the repository's root copies this directory
// to /app and runs `kelpie runtime ecosystem.config.js --env production` there.
module.exports = {
  apps: [
    {
      name: 'web',
      script: 'app.js',
      instances: 2, // two Node.js processes sharing port 3000 (cluster mode)
      port: 3000,
      health_check: { http: '/health', interval: '10s', failures: 3 },
      max_memory_restart: '300M',
      kill_timeout: '5s',
      env: { NODE_ENV: 'development' },
      env_production: { NODE_ENV: 'production' },
    },
  ],
};
