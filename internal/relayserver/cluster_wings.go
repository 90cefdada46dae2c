package relayserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/store"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Wings across nodes. A wing's connection lives on the node it reached,
// recorded in the store's wing registrations (wingUp, wingDown); a wing
// that reconnects elsewhere moves its registration, and the node it left
// drops the old connection. A user socket naming a wing (?wing_id=, as
// wing attach and the browser terminal do) that reaches another node is
// carried whole to the node holding the wing; the wing list is gathered
// from every live node.

// wingUp records this node as the holder of wingID and tells the node
// that held it before, if any, to drop its connection.
func (s *Server) wingUp(ctx context.Context, wingID string) error {
	prev, err := s.cfg.Store.PutWingRegistration(ctx, &store.WingRegistration{WingID: wingID, Node: s.cfg.Node, Updated: s.now()})
	if err != nil {
		return err
	}
	if prev == "" || prev == s.cfg.Node || !s.clustered() {
		return nil
	}
	n, err := s.liveNode(ctx, prev)
	if err != nil {
		return nil // dead: nothing to drop there
	}
	s.bg.Go(func() {
		ctx, cancel := context.WithTimeout(s.bgCtx, 5*time.Second)
		defer cancel()
		resp, err := s.hopRequest(ctx, n, http.MethodPost, internalPrefix+"wing-moved/"+url.PathEscape(wingID))
		if err != nil {
			s.log.Debug("telling a node its wing moved failed", "node", n.ID, "wing", wingID, "err", err)
			return
		}
		resp.Body.Close()
	})
	return nil
}

// wingDown forgets this node as the holder of wingID, unless the wing has
// moved on already.
func (s *Server) wingDown(wingID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := s.cfg.Store.DeleteWingRegistration(ctx, wingID, s.cfg.Node)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("cannot delete the wing's registration", "wing", wingID, "err", err)
	}
}

// serveWingMoved is /internal/cluster/wing-moved/{wingId}: the wing
// registered at another node; its connection here, if the store agrees,
// is closed.
func (s *Server) serveWingMoved(w http.ResponseWriter, r *http.Request) {
	if !isHop(r) {
		writeError(w, http.StatusForbidden, "cluster hop refused")
		return
	}
	id := r.PathValue("wingId")
	reg, err := s.cfg.Store.GetWingRegistration(r.Context(), id)
	if err == nil && reg.Node != s.cfg.Node && s.wings.DropWing(id, "replaced by a new connection of the same wing on another relay node") {
		s.log.Info("wing connection replaced by one on another node", "wing", id, "node", reg.Node)
		s.cm.replaced.WithLabelValues("wing").Inc()
	}
	w.WriteHeader(http.StatusNoContent)
}

// sweepWings closes the wing connections here whose registration names
// another live node, and records again the ones whose registration was
// released (this node was taken for dead while cut off from the store).
func (s *Server) sweepWings(ctx context.Context) {
	for _, id := range s.wings.Wings() {
		reg, err := s.cfg.Store.GetWingRegistration(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if _, err := s.cfg.Store.PutWingRegistration(ctx, &store.WingRegistration{WingID: id, Node: s.cfg.Node, Updated: s.now()}); err != nil {
				return
			}
		case err != nil:
			return
		case reg.Node != s.cfg.Node:
			if _, err := s.liveNode(ctx, reg.Node); err == nil && s.wings.DropWing(id, "replaced by a new connection of the same wing on another relay node") {
				s.log.Info("wing connection replaced by one on another node", "wing", id, "node", reg.Node)
				s.cm.replaced.WithLabelValues("wing").Inc()
			}
		}
	}
}

// serveWingUser serves /ws/pty and /ws/relay: here, unless the socket
// names a wing another live node holds.
func (s *Server) serveWingUser(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("wing_id")
	if !s.clustered() || isHop(r) || id == "" || s.wings.HasWing(id) {
		s.wingMux.ServeHTTP(w, r)
		return
	}
	reg, err := s.cfg.Store.GetWingRegistration(r.Context(), id)
	if err != nil || reg.Node == s.cfg.Node {
		s.wingMux.ServeHTTP(w, r)
		return
	}
	n, err := s.liveNode(r.Context(), reg.Node)
	if err != nil {
		s.log.Info("wing's node unreachable; serving here", "wing", id, "err", err)
		s.wingMux.ServeHTTP(w, r)
		return
	}
	s.proxyTo(w, r, n, fmt.Sprintf("wing %q", id))
}

// listWings serves /api/app/wings: this node's list, merged with every
// other live node's in a cluster.
func (s *Server) listWings(w http.ResponseWriter, r *http.Request) {
	if !s.clustered() || isHop(r) {
		s.wingMux.ServeHTTP(w, r)
		return
	}
	local := &bufferedResponse{header: http.Header{}}
	s.wingMux.ServeHTTP(local, r)
	if local.status != http.StatusOK {
		local.replay(w)
		return
	}
	var all []json.RawMessage
	if err := json.Unmarshal(local.body.Bytes(), &all); err != nil {
		local.replay(w)
		return
	}
	others, err := s.otherLiveNodes(r.Context())
	if err != nil {
		s.log.Warn("wing list: cannot list the other nodes; answering with this node's wings", "err", err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range others {
		wg.Go(func() {
			lists, err := s.remoteWings(r, n)
			if err != nil {
				s.log.Warn("wing list: a node did not answer", "node", n.ID, "err", err)
				return
			}
			mu.Lock()
			all = append(all, lists...)
			mu.Unlock()
		})
	}
	wg.Wait()
	// One entry per wing id (a wing moving between nodes may show twice
	// for a moment), in a stable order.
	seen := map[string]bool{}
	out := make([]json.RawMessage, 0, len(all))
	for _, raw := range all {
		var info wp.WingInfo
		if json.Unmarshal(raw, &info) != nil || seen[info.WingID] {
			continue
		}
		seen[info.WingID] = true
		out = append(out, raw)
	}
	sort.SliceStable(out, func(i, j int) bool {
		var a, b wp.WingInfo
		_ = json.Unmarshal(out[i], &a)
		_ = json.Unmarshal(out[j], &b)
		return a.WingID < b.WingID
	})
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) remoteWings(r *http.Request, n *store.Node) ([]json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.InternalURL+"/api/app/wings", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	req.Header.Set(HopHeader, string(s.cfg.ClusterSecret))
	s.cm.hops.WithLabelValues("wing_list").Inc()
	resp, err := s.hopClient.Do(req)
	if err != nil {
		s.cm.hopFailures.Inc()
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	var list []json.RawMessage
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&list); err != nil {
		return nil, err
	}
	return list, nil
}

// bufferedResponse records a small local response.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) replay(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
