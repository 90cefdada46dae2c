package turnprovider

import (
	"bytes"
	"encoding/json"

	"github.com/warrenhq/warren/internal/redact"
)

// Artifact is the sanitized record of one resolution (docs/protocols/turn-overlay.md §3.6). It never
// holds a username, password or secret.
type Artifact struct {
	Provider         string  `json:"provider"`
	ResolutionMethod string  `json:"resolution_method"`
	Input            Input   `json:"input"`
	Stages           []Stage `json:"stages"`
	Outcome          Outcome `json:"outcome"`
}

// Input is what was asked for, redacted.
type Input struct {
	LinkRedacted string `json:"link_redacted"`
}

// Stage is one step of a resolution.
type Stage struct {
	Name       string        `json:"name"`
	EndpointID string        `json:"endpoint_id"`
	Request    StageRequest  `json:"request"`
	Response   StageResponse `json:"response"`
	Outcome    StageOutcome  `json:"outcome"`
}

// StageRequest describes a stage's request without values.
type StageRequest struct {
	Method         string   `json:"method"`
	FormKeys       []string `json:"form_keys"`
	RedactedFields []string `json:"redacted_fields"`
}

// StageResponse is a stage's response (status 0 and an empty body for
// offline stages).
type StageResponse struct {
	StatusCode int    `json:"status_code"`
	Body       string `json:"body"`
}

// StageOutcome is how a stage ended.
type StageOutcome struct {
	Kind      string   `json:"kind"`
	Extracted []string `json:"extracted,omitempty"`
	ErrorCode string   `json:"error_code,omitempty"`
}

// Outcome is how the resolution ended.
type Outcome struct {
	ResultKind    string         `json:"result_kind"`
	Resolution    *ResolvedCreds `json:"resolution,omitempty"`
	ProviderError *ProviderError `json:"provider_error,omitempty"`
}

// ResolvedCreds is the resolution with its secrets replaced.
type ResolvedCreds struct {
	UsernameRedacted string `json:"username_redacted"`
	PasswordRedacted string `json:"password_redacted"`
	Address          string `json:"address"`
}

// ProviderError names the stage and code of a failure.
type ProviderError struct {
	Stage string `json:"stage"`
	Code  string `json:"code"`
}

func newArtifact(provider, method, link string, stages ...Stage) *Artifact {
	if stages == nil {
		stages = []Stage{}
	}
	for i := range stages {
		if stages[i].Request.FormKeys == nil {
			stages[i].Request.FormKeys = []string{}
		}
		if stages[i].Request.RedactedFields == nil {
			stages[i].Request.RedactedFields = []string{}
		}
	}
	return &Artifact{Provider: provider, ResolutionMethod: method,
		Input: Input{LinkRedacted: redact.String(link)}, Stages: stages}
}

func (a *Artifact) fail(err error, code string) error {
	stage := "resolve"
	if n := len(a.Stages); n > 0 {
		a.Stages[n-1].Outcome = StageOutcome{Kind: "error", ErrorCode: code}
		stage = a.Stages[n-1].Name
	}
	a.Outcome = Outcome{ResultKind: "provider_error", ProviderError: &ProviderError{Stage: stage, Code: code}}
	return &ResolveError{Artifact: a, Err: err}
}

func (a *Artifact) succeed(r *Resolution) {
	if n := len(a.Stages); n > 0 {
		a.Stages[n-1].Outcome = StageOutcome{Kind: "ok", Extracted: []string{"username", "password", "address"}}
	}
	a.Outcome = Outcome{ResultKind: "resolved", Resolution: &ResolvedCreds{
		UsernameRedacted: RedactedUsername, PasswordRedacted: RedactedPassword, Address: r.Address}}
}

// JSON encodes the artifact as probe writes it: 2-space indent, no HTML
// escaping (the placeholders keep their angle brackets), trailing newline.
func (a *Artifact) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(a); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
