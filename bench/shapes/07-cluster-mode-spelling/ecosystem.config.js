module.exports = {
  apps: [{
    name: 'IP_BAN', script: 'server.js', exec_mode: 'cluster_mode', instances: 2,
    exp_backoff_restart_delay: 100, env: { API_KEY: 'API_KEY', PORT: 24120 },
  }],
};
