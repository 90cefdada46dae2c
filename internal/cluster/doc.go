// Package cluster makes a relay node a member of its store's node registry:
// it registers the node, renews its lease, reaps nodes whose lease ended
// (releasing what they owned: host endpoints, wing registrations, ticket
// claims), and says whether the node is ready: the store answers, its schema
// is current, and the node holds its lease.
//
// Nodes share nothing but the database (see package store); there is no
// election. Every live node reaps; the store makes concurrent reapers
// release each record once.
//
// # Timing
//
// A node renews every Lease/3, so two renewals can fail before its lease
// ends. A node reaps every Lease/2, but only once it has held its lease
// without a failed renewal for a whole Lease: after a database outage every
// node's lease looks ended, and the nodes that were cut off with this one
// get a lease's time to renew before anyone releases their records. Leases
// are written with each node's clock, so nodes' clocks must agree to well
// within the lease (NTP).
//
// A node whose renewal finds another instance registered under its ID, or
// its record reaped, has lost its lease: it logs that, counts it, and
// registers again (its old records are gone). A single node on SQLite runs
// the same code under the default ID, invisibly.
package cluster
