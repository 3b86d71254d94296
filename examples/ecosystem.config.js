// Two apps, as a PM2 user would write them. `kelpie start examples/ecosystem.config.js --env production`
module.exports = {
  apps: [
    {
      name: 'hello',
      script: './hello.js',
      env: { PORT: 3000 },
      env_production: { PORT: 8080, NODE_ENV: 'production' },
      max_restarts: 10,
      kill_timeout: '3s',
    },
    {
      name: 'ticker',
      script: 'bash',
      args: ['-c', 'while true; do date; sleep 5; done'],
      restart_delay: 1000,
    },
  ],
};
