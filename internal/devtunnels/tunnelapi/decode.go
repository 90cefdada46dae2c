package tunnelapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/store"
)

// Bodies are decoded in two steps: into map[string]json.RawMessage to learn
// which fields are present (a partial update applies only those), then each
// known field into its type. Unknown fields are ignored: the SDKs send many
// that warren does not keep. Keys match exactly (camelCase), unlike
// encoding/json's case-insensitive struct decoding.

// Limits and syntax; see the package documentation.
var (
	idRE         = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	domainRE     = regexp.MustCompile(`^[0-9a-z][0-9a-z.-]{1,158}[0-9a-z]$`)
	labelRE      = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,50}$`)
	protocolRE   = regexp.MustCompile(`^[a-z0-9-]{1,20}$`)
	endpointIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

const (
	maxDescription = 400
	maxLabels      = 100
	maxPortName    = 200
	maxSSHUser     = 60
	maxHostKeys    = 16
	maxHostKey     = 16 << 10 // base64 characters
	// DefaultProtocol is the protocol of a port created without one.
	DefaultProtocol = "auto"
)

// validID reports whether s is a valid tunnelId (and tunnel name).
func validID(s string) bool { return idRE.MatchString(s) }

// decodeObject parses a body that must be a JSON object; an empty body or
// null is an empty object.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return map[string]json.RawMessage{}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, badField("body", "malformed JSON: %s", jsonErrText(err))
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	return m, nil
}

// jsonErrText describes a decoding error without the Go type names that
// encoding/json puts in some of its messages.
func jsonErrText(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("%s (at byte %d)", e.Error(), e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("expected a JSON object, got %s", e.Value)
	}
	return err.Error()
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// getString decodes m[key] as a string; null is "". ok is false if absent.
func getString(m map[string]json.RawMessage, fe fieldErrors, key string) (v string, ok bool) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return "", ok
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		fe.add(key, "must be a string")
	}
	return v, true
}

func getStrings(m map[string]json.RawMessage, fe fieldErrors, key string) (v []string, ok bool) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return nil, ok
	}
	var items []*string // pointers, so that a null item can be told apart
	if err := json.Unmarshal(raw, &items); err != nil {
		fe.add(key, "must be an array of strings")
		return nil, true
	}
	v = make([]string, 0, len(items))
	for _, s := range items {
		if s == nil {
			fe.add(key, "must be an array of strings, not null items")
			return nil, true
		}
		v = append(v, *s)
	}
	return v, true
}

func getBool(m map[string]json.RawMessage, fe fieldErrors, key string) (v bool, ok bool) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return false, ok
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		fe.add(key, "must be true or false")
	}
	return v, true
}

// getObject returns m[key], which must be a JSON object, as given (nil for
// null). The store keeps such documents opaque.
func getObject(m map[string]json.RawMessage, fe fieldErrors, key string) (v json.RawMessage, ok bool) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return nil, ok
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		fe.add(key, "must be a JSON object")
		return nil, true
	}
	return bytes.Clone(raw), true
}

// getPortNumber decodes m[key] as a port number 1–65535. ok is false if
// absent or null.
func getPortNumber(m map[string]json.RawMessage, fe fieldErrors, key string) (n uint16, ok bool) {
	raw, ok := m[key]
	if !ok || isNull(raw) {
		return 0, false
	}
	var v json.Number
	if err := json.Unmarshal(raw, &v); err != nil {
		fe.add(key, "must be a number")
		return 0, true
	}
	n, err := parsePort(v.String())
	if err != nil {
		fe.add(key, "%s", err)
	}
	return n, true
}

// parsePort parses a port number 1–65535 in decimal.
func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > 65535 {
		return 0, fmt.Errorf("port number must be an integer from 1 to 65535, not %q", s)
	}
	return uint16(n), nil
}

// text checks what the store and a PostgreSQL text column accept (valid
// UTF-8, no NUL) and a length in characters.
func text(fe fieldErrors, key, s string, max int) {
	switch {
	case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
		fe.add(key, "must be UTF-8 text without NUL")
	case utf8.RuneCountInString(s) > max:
		fe.add(key, "must be at most %d characters", max)
	}
}

func checkLabels(fe fieldErrors, key string, labels []string) {
	if len(labels) > maxLabels {
		fe.add(key, "at most %d labels are allowed", maxLabels)
	}
	for _, l := range labels {
		if !labelRE.MatchString(l) {
			fe.add(key, "label %q must be 1 to 50 characters from A-Z a-z 0-9 _ = -", l)
		}
	}
}

// common holds the body fields tunnels and ports share, decoded and
// applied alike; nil fields were absent.
type common struct {
	description   *string
	labels        *[]string
	options       *json.RawMessage
	accessControl *json.RawMessage
}

func (p *common) decode(m map[string]json.RawMessage, fe fieldErrors) {
	if v, ok := getString(m, fe, "description"); ok {
		text(fe, "description", v, maxDescription)
		p.description = &v
	}
	if v, ok := getStrings(m, fe, "labels"); ok {
		checkLabels(fe, "labels", v)
		p.labels = &v
	}
	if v, ok := getObject(m, fe, "options"); ok {
		p.options = &v
	}
	if v, ok := getObject(m, fe, "accessControl"); ok {
		p.accessControl = &v
	}
}

// apply sets the fields present in the body.
func (p *common) apply(description *string, labels *[]string, options, accessControl *json.RawMessage) {
	if p.description != nil {
		*description = *p.description
	}
	if p.labels != nil {
		*labels = slices.Clone(*p.labels)
	}
	if p.options != nil {
		*options = bytes.Clone(*p.options)
	}
	if p.accessControl != nil {
		*accessControl = bytes.Clone(*p.accessControl)
	}
}

// tunnelPatch is a decoded tunnel body. A nil field was absent; a present
// field of a null value clears (for name: resets to the tunnelId).
type tunnelPatch struct {
	tunnelID *string
	name     *string
	domain   *string
	common
	// ports are created with the tunnel; ignored on update.
	ports []*portPatch
}

// decodeTunnel decodes and validates a PUT /tunnels/{id} body.
func decodeTunnel(body []byte) (*tunnelPatch, error) {
	m, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	fe := fieldErrors{}
	p := &tunnelPatch{}
	if v, ok := getString(m, fe, "tunnelId"); ok {
		if v != "" && !validID(v) {
			fe.add("tunnelId", "must match %s", idRE)
		}
		p.tunnelID = &v
	}
	if v, ok := getString(m, fe, "name"); ok {
		if v != "" && !validID(v) {
			fe.add("name", "must be empty or match %s", idRE)
		}
		p.name = &v
	}
	if v, ok := getString(m, fe, "domain"); ok {
		if v != "" && !domainRE.MatchString(v) {
			fe.add("domain", "must be empty or match %s", domainRE)
		}
		p.domain = &v
	}
	p.common.decode(m, fe)
	if raw, ok := m["ports"]; ok && !isNull(raw) {
		p.ports = decodeTunnelPorts(raw, fe)
	}
	if err := fe.err("tunnel"); err != nil {
		return nil, err
	}
	return p, nil
}

// decodeTunnelPorts decodes the ports array of a tunnel body; each needs a
// portNumber, and numbers are unique.
func decodeTunnelPorts(raw json.RawMessage, fe fieldErrors) []*portPatch {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		fe.add("ports", "must be an array of ports")
		return nil
	}
	var out []*portPatch
	seen := map[uint16]bool{}
	for i, item := range items {
		key := fmt.Sprintf("ports[%d]", i)
		pp, err := decodePort(item)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				fe.add(key, "%s", err)
				continue
			}
			for f, msgs := range ae.fields {
				fe[key+"."+f] = append(fe[key+"."+f], msgs...)
			}
			continue
		}
		if pp.number == nil {
			fe.add(key+".portNumber", "is required")
			continue
		}
		if seen[*pp.number] {
			fe.add(key+".portNumber", "port %d is listed twice", *pp.number)
			continue
		}
		seen[*pp.number] = true
		out = append(out, pp)
	}
	return out
}

// apply merges p into t: only the fields present in the body change.
func (p *tunnelPatch) apply(t *store.Tunnel) {
	if p.name != nil {
		t.Name = *p.name
	}
	if t.Name == "" {
		t.Name = t.ID // reachable by name as well as by id
	}
	if p.domain != nil {
		t.Domain = *p.domain
	}
	p.common.apply(&t.Description, &t.Labels, &t.Options, &t.AccessControl)
}

// portPatch is a decoded port body; nil fields were absent.
type portPatch struct {
	number    *uint16
	tunnelID  *string
	name      *string
	protocol  *string
	isDefault *bool
	sshUser   *string
	common
}

// decodePort decodes and validates a port body. On failure the error is an
// *apiError with fields.
func decodePort(body []byte) (*portPatch, error) {
	m, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	fe := fieldErrors{}
	p := &portPatch{}
	if n, ok := getPortNumber(m, fe, "portNumber"); ok {
		p.number = &n
	}
	if v, ok := getString(m, fe, "tunnelId"); ok {
		p.tunnelID = &v
	}
	if v, ok := getString(m, fe, "name"); ok {
		text(fe, "name", v, maxPortName)
		p.name = &v
	}
	p.common.decode(m, fe)
	if v, ok := getString(m, fe, "protocol"); ok {
		if v != "" && !protocolRE.MatchString(v) {
			fe.add("protocol", "must match %s", protocolRE)
		}
		p.protocol = &v
	}
	if v, ok := getBool(m, fe, "isDefault"); ok {
		p.isDefault = &v
	}
	if v, ok := getString(m, fe, "sshUser"); ok {
		text(fe, "sshUser", v, maxSSHUser)
		p.sshUser = &v
	}
	if err := fe.err("port"); err != nil {
		return nil, err
	}
	return p, nil
}

// apply merges p into port: only the fields present change.
func (p *portPatch) apply(port *store.Port) {
	if p.name != nil {
		port.Name = *p.name
	}
	if p.protocol != nil {
		port.Protocol = *p.protocol
	}
	if port.Protocol == "" {
		port.Protocol = DefaultProtocol
	}
	if p.isDefault != nil {
		port.IsDefault = *p.isDefault
	}
	if p.sshUser != nil {
		port.SSHUser = *p.sshUser
	}
	p.common.apply(&port.Description, &port.Labels, &port.Options, &port.AccessControl)
}

// endpointBody is a decoded PUT /tunnels/{id}/endpoints/{eid} body. The
// endpoint is replaced as a whole, so absent fields are simply empty.
type endpointBody struct {
	id             string
	hostID         string
	connectionMode string
	hostPublicKeys []string
}

// decodeEndpoint decodes and validates an endpoint body. hostEndpoints and
// the relay URIs are ignored: the relay assigns the URIs.
func decodeEndpoint(body []byte) (*endpointBody, error) {
	m, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	fe := fieldErrors{}
	e := &endpointBody{}
	e.id, _ = getString(m, fe, "id")
	if e.hostID, _ = getString(m, fe, "hostId"); e.hostID != "" && !endpointIDRE.MatchString(e.hostID) {
		fe.add("hostId", "must match %s", endpointIDRE)
	}
	if e.connectionMode, _ = getString(m, fe, "connectionMode"); e.connectionMode != "" && e.connectionMode != tunnelproto.ConnectionModeTunnelRelay {
		fe.add("connectionMode", "must be %q", tunnelproto.ConnectionModeTunnelRelay)
	}
	e.hostPublicKeys, _ = getStrings(m, fe, "hostPublicKeys")
	if len(e.hostPublicKeys) > maxHostKeys {
		fe.add("hostPublicKeys", "at most %d keys are allowed", maxHostKeys)
	}
	for _, k := range e.hostPublicKeys {
		if _, err := base64.StdEncoding.DecodeString(k); err != nil || k == "" || len(k) > maxHostKey {
			fe.add("hostPublicKeys", "each key must be standard base64 of at most %d characters", maxHostKey)
			break
		}
	}
	if err := fe.err("endpoint"); err != nil {
		return nil, err
	}
	return e, nil
}
