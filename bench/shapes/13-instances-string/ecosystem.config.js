module.exports = {
  apps: [
    { name: 'node-slack-app', script: './index.js', exec_mode: 'cluster_mode', instances: '2',
      autorestart: true, max_memory_restart: '300M', env: { NODE_ENV: 'development' } },
  ],
};
