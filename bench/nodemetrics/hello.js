require('http').createServer((req, res) => res.end('hello')).listen(Number(process.env.PORT) || 0);
