module.exports = {
  apps: [
    { namespace: 'shop', name: 'shop-web', script: 'app.js' },
    { namespace: 'shop', name: 'shop-worker', script: 'app.js', instances: 2 },
    { namespace: 'admin', name: 'admin-web', script: 'app.js' },
  ],
};
