module.exports = {
  apps: [
    { name: 'svc', script: 'app.js', log_file: './logs/combined.log', time: true, env: { NODE_ENV: 'production' } },
  ],
};
