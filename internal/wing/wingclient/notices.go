package wingclient

import (
	"context"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// notice reports what a session asks of its user: a URL to open (checked:
// http or https only), a preview (decrypted and checked), attention.
// Frames that fail the checks are dropped.
func (s *Session) notice(f frame, onEvent func(Event)) {
	if f.SessionID != s.ID() {
		return
	}
	switch f.Type {
	case wp.TypePTYBrowserOpen:
		if s.opts.Spectate || wp.CheckURL(f.URL) != nil {
			return
		}
		onEvent(Event{Kind: "browser_open", SessionID: f.SessionID, URL: f.URL})
	case wp.TypePTYPreview:
		s.mu.Lock()
		c, viewer := s.cipher, s.viewer
		s.mu.Unlock()
		if c == nil || f.ViewerID != viewer {
			return
		}
		b, err := c.Open(f.Data)
		if err != nil {
			return
		}
		p, err := wp.ParsePreview(b)
		if err != nil {
			return
		}
		onEvent(Event{Kind: "preview", SessionID: f.SessionID, Preview: &p})
	case wp.TypeAttention:
		onEvent(Event{Kind: "attention", SessionID: f.SessionID})
	}
}

// AckAttention tells the wing the user has seen the session's attention
// request (pty.attention_ack); it clears needs_attention.
func (s *Session) AckAttention(ctx context.Context) error {
	return s.send(ctx, wp.SessionRef{Type: wp.TypePTYAttentionAk, SessionID: s.ID()})
}
