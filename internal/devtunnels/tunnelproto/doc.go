// Package tunnelproto holds the wire formats of the Microsoft Dev Tunnels
// protocol as warren speaks it: the management API's JSON bodies and the
// SSH request and channel payloads of the relay WebSockets. Wire formats
// only, standard library only; the relay and the tunnel host build on it.
//
// Field names and JSON tags follow the official Go SDK
// (github.com/microsoft/dev-tunnels, go/tunnels, v0.1.28) so that SDK
// clients read what warren writes and the other way round.
package tunnelproto
