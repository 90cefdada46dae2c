'use strict';
// Shared by the scripts a Go test drives (internal/devtunnels/tssdk): the
// configuration comes from WARREN_TS_* variables, every result is one JSON
// line on stdout, commands arrive as JSON lines on stdin, and the SDK's trace
// goes to stderr, which the Go side shows only when a test fails.
const fs = require('fs');
const readline = require('readline');
const mgmt = require('@microsoft/dev-tunnels-management');

// Synchronous writes: process.exit must not drop what was said before it.
function emit(obj) {
  fs.writeSync(1, JSON.stringify(obj) + '\n');
}

function stderr(line) {
  fs.writeSync(2, line + '\n');
}

function fail(err) {
  emit({ event: 'error', message: String((err && (err.stack || err.message)) || err) });
  process.exit(1);
}

// A rejection the SDK leaves unhandled inside one stream (a local port
// refusing, say) must not end a host serving others: report it and go on.
process.on('unhandledRejection', (err) => emit({ event: 'unhandled', message: String((err && err.message) || err) }));
process.on('uncaughtException', fail);

function env(name, def) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (def === undefined) fail(new Error(`${name} is not set`));
    return def;
  }
  return v;
}

function ports(name) {
  const v = process.env[name] || '';
  return v.split(',').filter((s) => s !== '').map((s) => parseInt(s, 10));
}

// trace sends the SDK's trace lines to stderr.
function trace(level, eventId, msg, err) {
  stderr(`[sdk ${level}] ${msg}${err ? ' ' + err : ''}`);
}

// managementClient talks to the relay at WARREN_TS_SERVICE. auth is the
// whole Authorization value ("Bearer <key>"), or null to rely on the tunnel's
// own access tokens, as a host or client handed only a token does.
function managementClient(auth) {
  const c = new mgmt.TunnelManagementHttpClient(
    { name: 'warren-tssdk-test', version: '1' },
    mgmt.ManagementApiVersions.Version20230927preview,
    async () => auth,
    env('WARREN_TS_SERVICE'),
  );
  c.trace = (msg) => stderr(`[mgmt] ${msg}`);
  return c;
}

// commands calls handle for each JSON line on stdin, one at a time, and
// done when stdin ends.
function commands(handle, done) {
  const rl = readline.createInterface({ input: process.stdin });
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    chain = chain.then(() => handle(JSON.parse(line))).catch(fail);
  });
  rl.on('close', () => { chain = chain.then(done).catch(fail); });
}

// pattern is n bytes derived from seed, as the Go side's echo check makes them.
function pattern(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 7) & 0xff;
  return b;
}

module.exports = { emit, fail, env, ports, trace, managementClient, commands, pattern };
