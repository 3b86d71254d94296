module.exports = {
  name: 'portfolio',
  script: 'app.js',
  args: 'start -p 24170',
  env: { NODE_ENV: 'production' },
};
