package wingproto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Message types (docs/protocols/wing.md §2.4).
const (
	TypeWingRegister   = "wing.register"
	TypeRegistered     = "registered"
	TypeWingHeartbeat  = "wing.heartbeat"
	TypeWingConfig     = "wing.config"
	TypeWingOffline    = "wing.offline"
	TypeError          = "error"
	TypeRelayRestart   = "relay.restart"
	TypePTYStart       = "pty.start"
	TypePTYStarted     = "pty.started"
	TypePTYOutput      = "pty.output"
	TypePTYInput       = "pty.input"
	TypePTYResize      = "pty.resize"
	TypePTYAttentionAk = "pty.attention_ack"
	TypePTYKill        = "pty.kill"
	TypePTYAttach      = "pty.attach"
	TypePTYDetach      = "pty.detach"
	TypePTYExited      = "pty.exited"
	TypePTYPreview     = "pty.preview"
	TypePTYBrowserOpen = "pty.browser_open"
	TypePTYMigrate     = "pty.migrate"
	TypePTYMigrated    = "pty.migrated"
	TypePTYFallback    = "pty.fallback"
	TypePTYAck         = "pty.ack"
	TypeAttention      = "session.attention"
	TypeBandwidth      = "bandwidth.exceeded"
	TypePasskeyChal    = "passkey.challenge"
	TypePasskeyResp    = "passkey.response"
	TypePasskeyReg     = "passkey.registered"
	TypeTunnelReq      = "tunnel.req"
	TypeTunnelRes      = "tunnel.res"
	TypeTunnelStream   = "tunnel.stream"
)

// Limits (docs/protocols/wing.md §2.1, §2.5).
const (
	// MaxFrame is the read limit on every wing and browser socket.
	MaxFrame = 512 << 10
	// ChunkSize is the largest plaintext carried by one pty.output.
	ChunkSize = 128 << 10
	// ReplaySize caps a session's replay buffer.
	ReplaySize = 2 << 20
)

// ErrNoType is returned for a JSON object without a "type" string.
var ErrNoType = errors.New("wingproto: message has no type")

// ErrBadKey is returned for a frame with a key outside [a-z0-9_].
var ErrBadKey = errors.New("wingproto: frame key outside [a-z0-9_]")

// DecodeType returns the "type" of one frame. Keys match exactly, as in
// DecodeEnvelope, so the relay and a wing never disagree on a type.
func DecodeType(b []byte) (string, error) {
	_, t, err := DecodeEnvelope(b)
	return t, err
}

// Decode unmarshals one frame into v, a pointer to one of the message
// structs. Frames with keys outside [a-z0-9_] are refused (see
// DecodeEnvelope).
func Decode(b []byte, v any) error {
	if _, _, err := DecodeEnvelope(b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("wingproto: bad frame: %w", err)
	}
	return nil
}

// Encode marshals a message struct; its Type field must be set.
func Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Envelope is the generic form the relay forwards: every field kept, so
// fields it does not know survive (docs/protocols/wing.md §3.2).
type Envelope map[string]json.RawMessage

// DecodeEnvelope parses a frame into an Envelope and returns its type.
func DecodeEnvelope(b []byte) (Envelope, string, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, "", fmt.Errorf("wingproto: bad frame: %w", err)
	}
	if e == nil {
		return nil, "", ErrNoType
	}
	// encoding/json matches struct fields case-insensitively (with Unicode
	// folding), so {"type":"pty.input","TYPE":"pty.start"} would be one type
	// to an exact reader and another to a struct decoder. Every protocol key
	// is lower snake case: refuse anything else.
	for k := range e {
		if !plainKey(k) {
			return nil, "", fmt.Errorf("%w: %q", ErrBadKey, k)
		}
	}
	var t string
	if raw, ok := e["type"]; !ok || json.Unmarshal(raw, &t) != nil || t == "" {
		return nil, "", ErrNoType
	}
	return e, t, nil
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// String returns a string field, "" when absent or not a string.
func (e Envelope) String(k string) string {
	var s string
	if raw, ok := e[k]; ok {
		json.Unmarshal(raw, &s)
	}
	return s
}

// Bool returns a bool field, false when absent or not a bool.
func (e Envelope) Bool(k string) bool {
	var b bool
	if raw, ok := e[k]; ok {
		json.Unmarshal(raw, &b)
	}
	return b
}

// Set stores v (marshalled) under k.
func (e Envelope) Set(k string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with plain values
	}
	e[k] = b
}

// Encode marshals the envelope.
func (e Envelope) Encode() []byte {
	b, _ := json.Marshal(map[string]json.RawMessage(e))
	return b
}

// Register is wing.register, the wing's first frame.
type Register struct {
	Type         string   `json:"type"`
	WingID       string   `json:"wing_id"`
	Hostname     string   `json:"hostname"`
	Platform     string   `json:"platform"`
	Version      string   `json:"version"`
	Agents       []string `json:"agents"`
	Skills       []string `json:"skills"`
	Labels       []string `json:"labels"`
	Identities   []string `json:"identities"`
	Projects     any      `json:"projects"`
	OrgSlug      string   `json:"org_slug"`
	RootDir      string   `json:"root_dir"`
	PublicKey    string   `json:"public_key"`
	Locked       bool     `json:"locked"`
	AllowedCount int      `json:"allowed_count"`
}

// Registered answers Register. WingID is the relay's connection id [quirk].
type Registered struct {
	Type        string `json:"type"`
	WingID      string `json:"wing_id"`
	RelayPubKey string `json:"relay_pub_key"`
	// UserID (a warren addition) is the user the wing token belongs to:
	// the wing's owner, which the wing matches against relay-set user_id.
	UserID string `json:"user_id,omitempty"`
	// ICEServers (a warren addition) are the STUN and TURN servers, with
	// short-lived credentials, for direct sessions.
	ICEServers []ICEServer `json:"ice_servers,omitempty"`
}

// Heartbeat is wing.heartbeat.
type Heartbeat struct {
	Type   string `json:"type"`
	WingID string `json:"wing_id"`
}

// WingConfig is wing.config.
type WingConfig struct {
	Type         string `json:"type"`
	WingID       string `json:"wing_id"`
	Locked       bool   `json:"locked"`
	AllowedCount int    `json:"allowed_count"`
}

// Error is an error frame.
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Start is pty.start. Command is a warren extension: a shell command line
// run with "sh -c" instead of an agent, honoured only when the wing allows
// it; wingthing peers ignore it. It is encrypted like pty.input (wt-pty key
// of the sender's key and the wing's public key from /api/app/wings), so
// the relay never sees it.
type Start struct {
	Type                string   `json:"type"`
	SessionID           string   `json:"session_id"`
	WingID              string   `json:"wing_id,omitempty"`
	PublicKey           string   `json:"public_key"`
	Agent               string   `json:"agent"`
	Cwd                 string   `json:"cwd,omitempty"`
	Cols                int      `json:"cols,omitempty"`
	Rows                int      `json:"rows,omitempty"`
	AuthToken           string   `json:"auth_token,omitempty"`
	PasskeyCredentialID string   `json:"passkey_credential_id,omitempty"`
	UserID              string   `json:"user_id,omitempty"`
	Email               string   `json:"email,omitempty"`
	DisplayName         string   `json:"display_name,omitempty"`
	OrgRole             string   `json:"org_role,omitempty"`
	Passkeys            []string `json:"passkeys,omitempty"`
	Command             string   `json:"command,omitempty"`
	// Acks (warren extension, flow.go): the client acknowledges output
	// with pty.ack. RelayAcks is set by a relay that passes pty.ack on
	// (warren's; it drops the field from users): with both, the wing
	// applies the output window from the first byte.
	Acks      bool `json:"acks,omitempty"`
	RelayAcks bool `json:"relay_acks,omitempty"`
}

// Started is pty.started. Command is a warren extension: true when the
// session runs pty.start's command. A client that sent a command and does
// not get it confirmed knows the command was lost on the way (a relay that
// rebuilds pty.start from its known fields, as wingthing's does, drops it)
// and that the wing started its default program instead.
type Started struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Agent     string `json:"agent"`
	PublicKey string `json:"public_key"`
	Cwd       string `json:"cwd"`
	AuthToken string `json:"auth_token,omitempty"`
	ViewerID  string `json:"viewer_id,omitempty"`
	Command   bool   `json:"command,omitempty"`
	// Window (warren extension, flow.go) is the output window, in bytes,
	// the wing applies to the controller once it acknowledges output
	// with pty.ack; absent: the wing takes no acks. Never on a
	// spectator's pty.started.
	Window int64 `json:"window,omitempty"`
}

// Output is pty.output; Data is encrypted.
type Output struct {
	Type       string `json:"type"`
	SessionID  string `json:"session_id"`
	Data       string `json:"data"`
	Compressed bool   `json:"compressed,omitempty"`
	ViewerID   string `json:"viewer_id,omitempty"`
	// Seq (warren extension) is the offset of Data's first byte in the
	// session's output stream; absent on replay chunks. A client orders
	// and deduplicates by it across the relay and a direct channel.
	Seq *int64 `json:"seq,omitempty"`
}

// Input is pty.input; Data is encrypted.
type Input struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Data      string `json:"data"`
	// Seq (warren extension) is the offset of Data's first byte in what
	// the client has typed; the wing orders and deduplicates by it.
	Seq *int64 `json:"seq,omitempty"`
}

// Resize is pty.resize.
type Resize struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Cols      int    `json:"cols"`
	Rows      int    `json:"rows"`
}

// SessionRef is any message that only names a session: pty.kill,
// pty.detach, pty.attention_ack. (warren) The relay sends pty.detach to
// the wing when the controller of a flow-controlled session leaves it.
type SessionRef struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
}

// Attach is pty.attach.
type Attach struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	PublicKey string `json:"public_key"`
	WingID    string `json:"wing_id,omitempty"`
	AuthToken string `json:"auth_token,omitempty"`
	Cols      int    `json:"cols,omitempty"`
	Rows      int    `json:"rows,omitempty"`
	Spectate  bool   `json:"spectate,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	ViewerID  string `json:"viewer_id,omitempty"`
	Email     string `json:"email,omitempty"`
	// OrgRole is relay-injected: "owner" for the wing's owner (a warren
	// addition on pty.attach, so the wing can tell the owner apart).
	OrgRole string `json:"org_role,omitempty"`
	// Acks and RelayAcks: as on Start.
	Acks      bool `json:"acks,omitempty"`
	RelayAcks bool `json:"relay_acks,omitempty"`
}

// Exited is pty.exited. ExitCode has no omitempty: 0 is a result.
type Exited struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	ExitCode  int    `json:"exit_code"`
	Error     string `json:"error,omitempty"`
	ViewerID  string `json:"viewer_id,omitempty"`
	// Seq (warren extension) is where the session's output ended: a
	// client whose output came over a direct channel waits for it all.
	Seq *int64 `json:"seq,omitempty"`
}

// Attention is session.attention.
type Attention struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Agent     string `json:"agent"`
	Cwd       string `json:"cwd"`
	Nonce     string `json:"nonce"`
}

// TunnelReq is tunnel.req.
type TunnelReq struct {
	Type         string `json:"type"`
	WingID       string `json:"wing_id"`
	RequestID    string `json:"request_id"`
	SenderPub    string `json:"sender_pub"`
	Payload      string `json:"payload"`
	SenderUserID string `json:"sender_user_id,omitempty"`
}

// TunnelRes is tunnel.res, and tunnel.stream with Done.
type TunnelRes struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Payload   string `json:"payload"`
	Done      bool   `json:"done,omitempty"`
}

// WingInfo is one entry of GET /api/app/wings.
type WingInfo struct {
	WingID       string `json:"wing_id"`
	PublicKey    string `json:"public_key"`
	Locked       bool   `json:"locked"`
	AllowedCount int    `json:"allowed_count"`
	// warren additions, ignored by wingthing's TunnelClient.
	Hostname string `json:"hostname,omitempty"`
	Platform string `json:"platform,omitempty"`
	Version  string `json:"version,omitempty"`
	// Agents is what the wing offered in wing.register: warren's wing
	// lists "shell" first; a wingthing wing lists only its AI agents.
	// Absent when the wing listed none (or the relay does not say).
	Agents []string `json:"agents,omitempty"`
}
