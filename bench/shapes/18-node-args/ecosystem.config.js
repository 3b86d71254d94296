module.exports = {
  apps: [
    { name: 'big', script: 'server.js', node_args: '--max-old-space-size=256', args: '--color --port 24180',
      max_restarts: 10, min_uptime: '1m', source_map_support: true },
  ],
};
