'use strict';
// A TS SDK host (TunnelRelayTunnelHost). It creates tunnel WARREN_TS_TUNNEL
// with ports WARREN_TS_PORTS through the operator credentials
// WARREN_TS_AUTH (as the first thing a TS host does), then connects with
// only the host token, forwarding to the local ports. DEVTUNNELS_PROTOCOL_VERSION
// (the SDK's own variable) forces 1 or 2. Commands on stdin:
//   {"cmd":"addPort","port":N}  create the port with the host token and refreshPorts()
// stdin closing disposes the host (which deletes its endpoint).
const { TunnelRelayTunnelHost } = require('@microsoft/dev-tunnels-connections');
const { TunnelAccessTokenProperties } = require('@microsoft/dev-tunnels-management');
const { emit, env, ports, trace, managementClient, commands } = require('./lib');

async function main() {
  const op = managementClient(env('WARREN_TS_AUTH'));
  const created = await op.createTunnel(
    { tunnelId: env('WARREN_TS_TUNNEL'), ports: ports('WARREN_TS_PORTS').map((p) => ({ portNumber: p, protocol: 'auto' })) },
    { tokenScopes: ['host'], includePorts: true },
  );
  const hostToken = TunnelAccessTokenProperties.getTunnelAccessToken(created, 'host');
  const tunnel = { ...created, accessTokens: { host: hostToken } };
  emit({ event: 'created', tunnelId: tunnel.tunnelId, clusterId: tunnel.clusterId });

  const mgmt = managementClient(null);
  const host = new TunnelRelayTunnelHost(mgmt, trace);
  host.trace = trace;
  if (process.env.WARREN_TS_E2E === '0') host.enableE2EEncryption = false;
  host.onConnectionStatusChanged((e) => emit({ event: 'status', status: e.status }));
  await host.connect(tunnel);
  emit({ event: 'connected', protocol: host.connectionProtocol });

  commands(async (c) => {
    if (c.cmd === 'addPort') {
      await mgmt.createTunnelPort(tunnel, { portNumber: c.port, protocol: 'auto' });
      await host.refreshPorts();
      emit({ event: 'portAdded', port: c.port });
    } else {
      throw new Error(`unknown command ${c.cmd}`);
    }
  }, async () => {
    await host.dispose();
    emit({ event: 'closed' });
    process.exit(0);
  });
}

main().catch(require('./lib').fail);
