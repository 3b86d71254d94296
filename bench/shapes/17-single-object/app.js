const http = process.env.PORT ? require("http") : null;
// Stays up; listens on PORT when one is given (cluster instances share it).
if (http) http.createServer((q, s) => s.end("ok")).listen(process.env.PORT);
setInterval(() => {}, 1000);
