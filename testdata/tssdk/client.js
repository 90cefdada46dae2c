'use strict';
// A TS SDK client (TunnelRelayTunnelClient) of tunnel WARREN_TS_TUNNEL in
// cluster WARREN_TS_CLUSTER (default: as GET /tunnels lists it), with a connect token from WARREN_TS_AUTH's
// operator credentials. It waits for ports WARREN_TS_PORTS, then takes
// commands on stdin:
//   {"cmd":"echo","port":P,"bytes":N,"seed":S}  send N pattern bytes, half-close,
//                                               check they come back
//   {"cmd":"wait","port":P}                     wait until P is forwarded
// WARREN_TS_E2E=0 turns the SDK's default end-to-end encryption request off.
const crypto = require('crypto');
const { TunnelRelayTunnelClient } = require('@microsoft/dev-tunnels-connections');
const { SecureStream } = require('@microsoft/dev-tunnels-ssh');
const { emit, env, ports, trace, managementClient, commands, pattern } = require('./lib');

function sha(b) { return crypto.createHash('sha256').update(b).digest('hex'); }

async function echo(client, port, n, seed) {
  const stream = await client.connectToForwardedPort(port);
  const data = pattern(n, seed);
  const chunks = [];
  let have = 0;
  // Read until all bytes are back (no half-close: an SDK stream's end()
  // may close the channel in both directions), or the stream ends.
  await new Promise((resolve, reject) => {
    stream.on('data', (d) => {
      chunks.push(Buffer.from(d));
      have += d.length;
      if (have >= n) resolve();
    });
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
    stream.write(data);
  });
  const got = Buffer.concat(chunks);
  stream.end();
  stream.destroy();
  return { ok: sha(got) === sha(data), bytes: got.length, e2e: stream instanceof SecureStream, stream: stream.constructor.name };
}

async function main() {
  const op = managementClient(env('WARREN_TS_AUTH'));
  const tunnelId = env('WARREN_TS_TUNNEL');
  let clusterId = process.env.WARREN_TS_CLUSTER;
  if (!clusterId) {
    // A client knowing only the tunnel's id finds its cluster in the list.
    const found = (await op.listTunnels()).find((t) => t.tunnelId === tunnelId);
    if (!found) throw new Error(`tunnel ${tunnelId} is not listed`);
    clusterId = found.clusterId;
  }
  const tunnel = await op.getTunnel({ tunnelId, clusterId }, { includePorts: true, tokenScopes: ['connect'] });
  emit({ event: 'tunnel', tunnelId, clusterId, endpoints: (tunnel.endpoints || []).length });
  const client = new TunnelRelayTunnelClient(managementClient(null), trace);
  client.trace = trace;
  client.acceptLocalConnectionsForForwardedPorts = false;
  if (process.env.WARREN_TS_E2E === '0') client.enableE2EEncryption = false;
  await client.connect(tunnel);
  emit({ event: 'connected', protocol: client.connectionProtocol });
  for (const p of ports('WARREN_TS_PORTS')) {
    await client.waitForForwardedPort(p);
    emit({ event: 'forwarded', port: p });
  }
  commands(async (c) => {
    if (c.cmd === 'echo') {
      emit({ event: 'echo', port: c.port, ...(await echo(client, c.port, c.bytes, c.seed || 0)) });
    } else if (c.cmd === 'wait') {
      await client.waitForForwardedPort(c.port);
      emit({ event: 'forwarded', port: c.port });
    } else {
      throw new Error(`unknown command ${c.cmd}`);
    }
  }, async () => {
    await client.dispose();
    emit({ event: 'closed' });
    process.exit(0);
  });
}

main().catch(require('./lib').fail);
