// The example image's app (see the Dockerfile at the repository's root): a plain Node.js HTTP
// server with nothing Kelpie-specific in it. Both instances call listen(PORT); Kelpie owns the
// port and hands each of them the same socket.
const http = require('http');

const port = Number(process.env.PORT || 3000);
const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.end('ok\n');
    return;
  }
  res.end(`hello from pid ${process.pid} (${process.env.NODE_ENV || 'no NODE_ENV'})\n`);
});
server.listen(port, () => console.log(`web ${process.pid} listening on ${port}`));

// Kelpie stops an app with SIGINT (its kill_signal), Docker's `stop` sends SIGTERM to Kelpie:
// finish the requests in progress, then exit 0.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    console.log(`web ${process.pid} stopping on ${signal}`);
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  });
}
