'use strict';
// hello.js that exits after EXIT_AFTER requests (its instructions counted under valgrind:
// instructions.sh).
const limit = Number(process.env.EXIT_AFTER) || Infinity;
let n = 0;
require('http').createServer((req, res) => {
  res.end('hello');
  if (++n === limit) process.exit(0);
}).listen(Number(process.env.PORT) || 0);
