module.exports = {
  apps: [
    { name: 'web', script: 'web.sh', args: 'web start', interpreter: '/bin/bash', env: { PORT: '8080' } },
    { name: 'migrate', script: 'once.sh', interpreter: '/bin/bash', autorestart: false },
  ],
};
