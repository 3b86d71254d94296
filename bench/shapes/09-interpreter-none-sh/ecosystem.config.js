module.exports = {
  apps: [
    { name: 'blog', interpreter: 'none', script: './start.sh', instances: 1, autorestart: true,
      out_file: './logs/stdout', error_file: './logs/stderr', merge_logs: true, env: { NODE_ENV: 'production' } },
  ],
};
