'use strict';
const http = require('http');
const addon = require('./build/Release/addon.node');

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/') return send(res, 200, { native: typeof addon.add === 'function' });
  if (url.pathname === '/add') {
    return send(res, 200, { sum: addon.add(Number(url.searchParams.get('a')), Number(url.searchParams.get('b'))) });
  }
  if (url.pathname.startsWith('/fnv/')) {
    return send(res, 200, { fnv1a: addon.fnv1a(decodeURIComponent(url.pathname.slice(5))) });
  }
  if (url.pathname === '/whoami') return send(res, 200, { uid: process.getuid() });
  return send(res, 404, { error: 'not found' });
}).listen(3000, '0.0.0.0');
