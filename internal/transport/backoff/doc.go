// Package backoff computes retry delays that grow exponentially up to a
// cap, with random jitter so that many clients that lost the same relay at
// the same moment do not all reconnect in lockstep.
//
// A typical reconnect loop:
//
//	var b backoff.Backoff // defaults: 100ms doubling to 12.8s, 20% jitter
//	for {
//		err := connect(ctx)
//		if err == nil {
//			b.Reset() // the next outage starts again from Initial
//			continue
//		}
//		if err := b.Wait(ctx); err != nil {
//			return err // ctx is done
//		}
//	}
//
// Jitter only ever shortens a delay, so Max is a hard cap. The policies
// in use are named: Reconnect (tunnel-host and tunnel-client connect
// losing the relay) and Exponential (tunnel-client turn's worker restarts,
// docs/protocols/turn-overlay.md §3.2, with its configured bounds). This is the only
// backoff in warren; a retry loop elsewhere should use it too.
package backoff
