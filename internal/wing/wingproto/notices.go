package wingproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"unicode"
)

// BrowserOpen is pty.browser_open: the session asks its user to open a URL
// (plaintext; clients open it only after the user confirms).
type BrowserOpen struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	URL       string `json:"url"`
}

// PreviewFrame is pty.preview; Data is an encrypted Preview.
type PreviewFrame struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Data      string `json:"data"`
	ViewerID  string `json:"viewer_id,omitempty"`
}

// AttentionNotice is session.attention as warren's relay forwards it to a
// session's users (a warren addition; wingthing's relay consumes it).
type AttentionNotice struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Nonce     string `json:"nonce,omitempty"`
}

// Preview is the decrypted content of pty.preview: Mode "url" with URL,
// "markdown" with Content, or "" (the preview is cleared).
type Preview struct {
	Mode    string `json:"mode"`
	URL     string `json:"url,omitempty"`
	Content string `json:"content,omitempty"`
}

// Preview and URL limits: a preview rides in one frame with room to spare.
const (
	MaxURL            = 4096
	MaxPreviewContent = 256 << 10
)

// ErrBadURL: a URL a session asked to open or preview is refused.
var ErrBadURL = errors.New("refused URL")

// CheckURL accepts an absolute http or https URL of at most MaxURL bytes
// without control or space characters: what a client may offer to open.
// Other schemes (file:, javascript:, custom handlers) are refused, since
// the request comes from the remote machine.
func CheckURL(s string) error {
	if s == "" || len(s) > MaxURL {
		return fmt.Errorf("%w: empty or longer than %d bytes", ErrBadURL, MaxURL)
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("%w: %q holds a control or space character", ErrBadURL, s)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w: %q is not an http(s) URL with a host and no credentials", ErrBadURL, s)
	}
	return nil
}

// Check reports what is wrong with a preview.
func (p Preview) Check() error {
	switch p.Mode {
	case "":
		if p.URL != "" || p.Content != "" {
			return errors.New("preview: a cleared preview carries nothing")
		}
	case "url":
		return CheckURL(p.URL)
	case "markdown":
		if len(p.Content) > MaxPreviewContent {
			return fmt.Errorf("preview: content longer than %d bytes", MaxPreviewContent)
		}
	default:
		return fmt.Errorf("preview: unknown mode %q (url, markdown or empty)", p.Mode)
	}
	return nil
}

// ParsePreview decodes and checks a decrypted pty.preview payload.
func ParsePreview(b []byte) (Preview, error) {
	var p Preview
	if err := json.Unmarshal(b, &p); err != nil {
		return Preview{}, fmt.Errorf("preview: %w", err)
	}
	return p, p.Check()
}
