'use strict';
// The management calls a TS host makes, one by one, each reported as a JSON
// line: cluster recommendation, create (with tokens), get by id and cluster,
// ports, endpoint, token parsing, and clean-up.
const { TunnelAccessTokenProperties } = require('@microsoft/dev-tunnels-management');
const { emit, env, managementClient } = require('./lib');

async function main() {
  const tunnelId = env('WARREN_TS_TUNNEL');
  const op = managementClient(env('WARREN_TS_AUTH'));
  const selections = [];
  op.onClusterSelected((e) => selections.push(e));

  const rec = await op.getClusterRecommendations();
  emit({ event: 'recommendations', recommendedClusterId: rec.recommendedClusterId, count: (rec.recommendations || []).length });

  let tunnel = await op.createTunnel(
    { tunnelId, ports: [{ portNumber: 3000, protocol: 'http' }] },
    { tokenScopes: ['host', 'connect'], includePorts: true },
  );
  emit({
    event: 'created', tunnelId: tunnel.tunnelId, clusterId: tunnel.clusterId,
    selection: selections.map((s) => s.source), ports: (tunnel.ports || []).map((p) => p.portNumber),
    tokenScopes: Object.keys(tunnel.accessTokens || {}).sort(),
  });

  // From here on only the host token speaks, as for a TS host given a tunnel.
  const hostToken = TunnelAccessTokenProperties.getTunnelAccessToken(tunnel, 'host');
  const props = TunnelAccessTokenProperties.tryParse(hostToken);
  emit({ event: 'token', tunnelId: props.tunnelId, scopes: props.scopes, expires: props.expiration ? props.expiration.toISOString() : null });
  const host = managementClient(null);
  const ref = { tunnelId: tunnel.tunnelId, clusterId: tunnel.clusterId, accessTokens: { host: hostToken } };

  const got = await host.getTunnel(ref, { includePorts: true, tokenScopes: ['host'] });
  emit({ event: 'got', tunnelId: got.tunnelId, clusterId: got.clusterId, ports: got.ports.map((p) => p.portNumber), renewed: !!(got.accessTokens && got.accessTokens.host) });

  const port = await host.createTunnelPort(ref, { portNumber: 3001, protocol: 'auto' });
  emit({ event: 'portCreated', portNumber: port.portNumber, clusterId: port.clusterId });
  let dupStatus = 0;
  try {
    await host.createTunnelPort(ref, { portNumber: 3001, protocol: 'auto' });
  } catch (e) {
    dupStatus = (e.response && e.response.status) || -1;
  }
  emit({ event: 'portDuplicate', status: dupStatus });
  const list = await host.listTunnelPorts(ref);
  emit({ event: 'ports', ports: list.map((p) => p.portNumber) });

  const ep = await host.updateTunnelEndpoint(ref, {
    id: 'tshost-relay', hostId: 'tshost', connectionMode: 'TunnelRelay', hostPublicKeys: [],
  });
  emit({ event: 'endpoint', id: ep.id, hostRelayUri: ep.hostRelayUri, clientRelayUri: ep.clientRelayUri });
  await host.deleteTunnelEndpoints(ref, 'tshost-relay');
  emit({ event: 'endpointDeleted' });
  const deleted = await host.deleteTunnelPort(ref, 3001);
  emit({ event: 'portDeleted', deleted });
  const del = await op.deleteTunnel({ tunnelId: tunnel.tunnelId, clusterId: tunnel.clusterId });
  emit({ event: 'tunnelDeleted', deleted: del });
  op.dispose && op.dispose();
  host.dispose && host.dispose();
}

main().then(() => process.exit(0), (e) => require('./lib').fail(e));
