// A TLS front for a Directus of the harness (the tests' HTTPS hop, issue 28): HTTPS on
// 127.0.0.1:PORT with CERT and KEY (PEM), every request passed to TARGET (http://host:port) as
// it comes, bodies streamed both ways.
//   node tls-front.mjs PORT TARGET CERT KEY
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const [port, target, cert, key] = process.argv.slice(2);
if (!key) {
  console.error('usage: node tls-front.mjs PORT TARGET CERT KEY');
  process.exit(2);
}
const t = new URL(target);
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
  const up = http.request(
    { host: t.hostname, port: t.port, path: req.url, method: req.method, headers: { ...req.headers, host: t.host } },
    (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    },
  );
  up.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`tls-front: ${e.message}\n`);
  });
  req.pipe(up);
});
server.listen(Number(port), '127.0.0.1', () => console.log(`tls-front https://127.0.0.1:${port} -> ${target}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
