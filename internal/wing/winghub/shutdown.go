package winghub

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

const broadcastTimeout = 2 * time.Second

// Shutdown tells every wing and user socket relay.restart, then closes the
// wings (and users) with StatusGoingAway. Call it before shutting down HTTP.
func (h *Hub) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.closing = true
	var all []*conn
	var wings []*wingConn
	for _, wc := range h.wings {
		all = append(all, &wc.conn)
		wings = append(wings, wc)
	}
	var users []*browserConn
	for b := range h.browsers {
		users = append(users, b)
	}
	h.mu.Unlock()
	msg := []byte(`{"type":"relay.restart"}`)
	// User sockets: relay.restart after what is queued, then the close,
	// both by the socket's writer.
	for _, b := range users {
		b.q.push(msg, time.Time{})
		b.q.closeAfter(websocket.StatusGoingAway, "relay restarting")
	}
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Add(1)
		go func() { defer wg.Done(); c.send(ctx, msg, broadcastTimeout) }()
	}
	wg.Wait()
	// Close waits for each peer's close frame (up to 5 s): in parallel.
	for _, wc := range wings {
		wg.Add(1)
		go func() { defer wg.Done(); wc.ws.Close(websocket.StatusGoingAway, "relay restarting") }()
	}
	for _, b := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-b.q.done:
			case <-ctx.Done():
				b.ws.CloseNow()
			}
		}()
	}
	wg.Wait()
	h.Close()
}

// Close stops the hub's background work; the bandwidth charges not yet in
// the usage store are written before it returns.
func (h *Hub) Close() {
	h.stopOnce.Do(func() { close(h.done) })
	<-h.usageDone
}
