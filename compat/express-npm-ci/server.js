'use strict';
// A small Express service: JSON routes, a crypto hash, a body parser and an error handler.
const crypto = require('node:crypto');
const express = require('express');
const morgan = require('morgan');

const app = express();
app.use(morgan('tiny'));
app.use(express.json());

app.get('/', (req, res) => {
  res.json({ message: 'hello from express', node: process.versions.node.split('.')[0] });
});

app.get('/hash/:text', (req, res) => {
  res.type('text/plain').send(crypto.createHash('sha256').update(req.params.text).digest('hex'));
});

app.post('/sum', (req, res) => {
  const numbers = Array.isArray(req.body.numbers) ? req.body.numbers : [];
  res.json({ sum: numbers.reduce((a, b) => a + Number(b), 0), count: numbers.length });
});

app.get('/whoami', (req, res) => {
  res.json({ uid: process.getuid(), tz: Intl.DateTimeFormat().resolvedOptions().timeZone });
});

app.use((req, res) => res.status(404).json({ error: 'not found', path: req.path }));

const port = Number(process.env.PORT || 3000);
app.listen(port, '0.0.0.0', () => console.log(`listening on ${port}`));
