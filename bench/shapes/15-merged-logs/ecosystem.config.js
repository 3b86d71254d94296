module.exports = {
  apps: [
    { name: 'api', script: 'app.js', instances: 2, merge_logs: true,
      out_file: './logs/api-out.log', error_file: './logs/api-error.log', log_date_format: 'YYYY-MM-DD HH:mm:ss' },
  ],
};
