module.exports = {
  apps: [
    { name: 'worker', script: 'worker.py', interpreter: 'python3', args: ['--queue', 'high', '--concurrency=2'],
      env: { PYTHONUNBUFFERED: '1' } },
  ],
};
