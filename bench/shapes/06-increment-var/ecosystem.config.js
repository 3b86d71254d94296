module.exports = {
  apps: [
    { name: 'workers', script: 'index.js', instances: 3, exec_mode: 'fork',
      increment_var: 'PORT', instance_var: 'INSTANCE_ID', env: { PORT: 24110, NODE_ENV: 'production' } },
  ],
};
