// A tiny HTTP app to try Kelpie with: `kelpie start examples/hello.js`.
const http = require('http');
const port = Number(process.env.PORT || 3000);
let served = 0;
http
  .createServer((req, res) => {
    served += 1;
    res.end(`hello from pid ${process.pid} (request ${served})\n`);
  })
  .listen(port, () => console.log(`hello listening on http://127.0.0.1:${port}`));
