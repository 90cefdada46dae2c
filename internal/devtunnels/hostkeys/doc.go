// Package hostkeys keeps the SSH host keys of relay-server and tunnel-host
// on disk: an ed25519 key and an ECDSA P-384 key, generated on first use
// and loaded on every later start, so that the keys peers see (and
// tunnel-host's endpoint publishes in hostPublicKeys) survive restarts.
//
// Two key types because the peers differ: warren and OpenSSH-style clients
// prefer ed25519, while dev-tunnels-ssh 3.12.42 (the Dev Tunnels
// TypeScript SDK) knows only rsa-sha2-512, rsa-sha2-256,
// ecdsa-sha2-nistp384 and ecdsa-sha2-nistp256 host keys.
//
// The files are OpenSSH private keys (PEM "OPENSSH PRIVATE KEY", mode 0600),
// named like sshd's: ssh_host_ed25519_key and ssh_host_ecdsa_key.
package hostkeys
