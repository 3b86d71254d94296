// A plain HTTP app for cluster mode (several instances, Kelpie listening on the app's port).
// Nothing Kelpie-specific in it: every instance listens on the same port, and Kelpie's preloaded
// shim (crates/kelpie-supervisor/assets/node-shim.js) hands each one the shared socket instead, so
// the answers come from different pids.
const http = require('http');
const port = Number(process.env.PORT || 3000);
http
  .createServer((req, res) => res.end(`hello from ${process.pid}\n`))
  .listen(port, () => console.log(`cluster-http ${process.pid} listening on ${port}`));
