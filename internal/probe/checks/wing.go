package checks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/wing/wingclient"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// wingTarget is what both wing checks need: the relay and a user token.
// The parameter structs repeat these keys (the decoder reads a struct's
// own fields only).
type wingTarget struct {
	URL       string
	CAFile    string
	UserToken probe.Secret
}

// build validates the shared keys and returns the base URL and client.
func (t wingTarget) build() (string, *http.Client, error) {
	u, err := relayTarget{URL: t.URL, CAFile: t.CAFile}.validate()
	if err != nil {
		return "", nil, err
	}
	if !t.UserToken.IsSet() {
		return "", nil, probe.ParamErrorf("user_token", "missing: a user token, minted with 'relay-server wings token --kind user' (user_token_file or user_token_env)")
	}
	hc, err := httpClient(t.CAFile)
	if err != nil {
		return "", nil, err
	}
	return strings.TrimRight(u.String(), "/"), hc, nil
}

// listWings is GET /api/app/wings with the user token: the wings of the
// token's user that are connected to the relay now (the relay lists only
// connected wings).
func listWings(ctx context.Context, hc *http.Client, base, token string) ([]wp.WingInfo, error) {
	code, _, body, err := httpGet(ctx, hc, base+"/api/app/wings", http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		return nil, fmt.Errorf("GET /api/app/wings: %w", err)
	}
	switch code {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("GET /api/app/wings: %s (the user token is unknown, expired, signed by another relay or not a user token; mint one with 'relay-server wings token --kind user')", statusText(code, body))
	case http.StatusNotFound:
		return nil, fmt.Errorf("GET /api/app/wings: %s (is the wing hub enabled on this relay?)", statusText(code, body))
	default:
		return nil, fmt.Errorf("GET /api/app/wings: %s", statusText(code, body))
	}
	var wings []wp.WingInfo
	if err := json.Unmarshal(body, &wings); err != nil {
		return nil, fmt.Errorf("GET /api/app/wings: the answer is not a list of wings: %w", err)
	}
	return wings, nil
}

// pickWing finds want among wings ("" means any one, if unambiguous when
// one is required). It explains what is connected when want is not.
func pickWing(wings []wp.WingInfo, want string, needOne bool) (*wp.WingInfo, error) {
	ids := wingIDs(wings)
	if want == "" {
		switch {
		case len(wings) == 0:
			return nil, errors.New("no wing of this user is connected to the relay")
		case needOne && len(wings) > 1:
			return nil, fmt.Errorf("%d wings are connected (%s); name one with the wing key", len(wings), strings.Join(ids, ", "))
		}
		return &wings[0], nil
	}
	for i := range wings {
		if wings[i].WingID == want {
			return &wings[i], nil
		}
	}
	if len(wings) == 0 {
		return nil, fmt.Errorf("wing %s is not connected to the relay (no wing of this user is)", want)
	}
	return nil, fmt.Errorf("wing %s is not connected to the relay (connected: %s)", want, strings.Join(ids, ", "))
}

func wingIDs(wings []wp.WingInfo) []string {
	ids := make([]string, len(wings))
	for i, w := range wings {
		ids[i] = w.WingID
	}
	sort.Strings(ids)
	return ids
}

// describeWing is "box (host, linux, 1.2.3)", leaving out what is unknown.
func describeWing(w *wp.WingInfo) string {
	var facts []string
	for _, f := range []string{w.Hostname, w.Platform, w.Version} {
		if f != "" {
			facts = append(facts, f)
		}
	}
	if len(facts) == 0 {
		return w.WingID
	}
	return fmt.Sprintf("%s (%s)", w.WingID, strings.Join(facts, ", "))
}

func wingDetails(res *probe.Result, w *wp.WingInfo) {
	res.Detail("wing", w.WingID)
	if w.Hostname != "" {
		res.Detail("hostname", w.Hostname)
	}
	if w.Platform != "" {
		res.Detail("platform", w.Platform)
	}
	if w.Version != "" {
		res.Detail("wing_version", w.Version)
	}
}

// ---- wing_presence ----

type wingPresenceParams struct {
	URL       string       `yaml:"url"`        // relay-server base URL (required)
	CAFile    string       `yaml:"ca_file"`    // PEM bundle to trust; default the system roots
	UserToken probe.Secret `yaml:"user_token"` // user token (relay-server wings token --kind user) (required)
	Wing      string       `yaml:"wing"`       // machine wing id that must be connected; default any
	MinWings  int          `yaml:"min_wings"`  // CRITICAL when fewer wings of the user are connected; default 1
}

func wingPresenceKind() probe.Kind {
	return probe.Kind{
		Name:    "wing_presence",
		Summary: "GET /api/app/wings with a user token: the named wing (or any) is connected to the relay",
		Example: `- name: wing-box
  kind: wing_presence
  url: https://relay.example
  user_token_file: /etc/warren/probe-user-token   # relay-server wings token --kind user
  wing: box              # machine wing id; "" any wing of the user
  min_wings: 1           # CRITICAL when fewer of the user's wings are connected
  critical: 2s`,
		Params: func() any { return &wingPresenceParams{MinWings: 1} },
		New: func(p any, env probe.Env) (probe.Check, error) {
			c := &wingPresence{p: *p.(*wingPresenceParams)}
			var err error
			if c.base, c.hc, err = (wingTarget{c.p.URL, c.p.CAFile, c.p.UserToken}).build(); err != nil {
				return nil, err
			}
			if c.p.MinWings < 0 {
				return nil, probe.ParamErrorf("min_wings", "must not be negative, got %d", c.p.MinWings)
			}
			return c, nil
		},
	}
}

type wingPresence struct {
	p    wingPresenceParams
	base string
	hc   *http.Client
}

func (c *wingPresence) Run(ctx context.Context) probe.Result {
	var res probe.Result
	end := res.Begin("list")
	wings, err := listWings(ctx, c.hc, c.base, c.p.UserToken.Value)
	end()
	if err != nil {
		return res.Fail(stageOf(err, "list"), err)
	}
	res.Detail("wings", fmt.Sprint(len(wings)))
	if c.p.Wing != "" {
		w, err := pickWing(wings, c.p.Wing, false)
		if err != nil {
			return res.Fail("presence", err)
		}
		wingDetails(&res, w)
		res.Message = fmt.Sprintf("wing %s is connected", describeWing(w))
	}
	if len(wings) < c.p.MinWings {
		what := "no wing of this user is connected to the relay"
		if len(wings) > 0 {
			what = fmt.Sprintf("%d wings of this user are connected (%s), at least %d expected", len(wings), strings.Join(wingIDs(wings), ", "), c.p.MinWings)
		}
		return res.Fail("presence", errors.New(what))
	}
	if res.Message == "" {
		res.Message = fmt.Sprintf("%d wings connected: %s", len(wings), strings.Join(wingIDs(wings), ", "))
		if len(wings) == 0 {
			res.Message = "0 wings connected (min_wings 0)"
		}
	} else if len(wings) > 1 {
		res.Message += fmt.Sprintf(" (%d wings of this user)", len(wings))
	}
	res.Message += " in " + ms(total(res.Stages))
	return res
}

// ---- wing_session ----

type wingSessionParams struct {
	URL       string       `yaml:"url"`        // relay-server base URL (required)
	CAFile    string       `yaml:"ca_file"`    // PEM bundle to trust; default the system roots
	UserToken probe.Secret `yaml:"user_token"` // user token (relay-server wings token --kind user) (required)
	Wing      string       `yaml:"wing"`       // machine wing id; default the user's only connected wing
	Cwd       string       `yaml:"cwd"`        // working directory of the command on the wing; default the wing's
}

func wingSessionKind() probe.Kind {
	return probe.Kind{
		Name:    "wing_session",
		Summary: "E2E-encrypted PTY session on a wing: run echo <nonce>, expect the nonce back and exit code 0",
		Example: `- name: wing-box-session
  kind: wing_session
  url: https://relay.example
  user_token_env: PROBE_WING_USER_TOKEN   # or user_token_file
  wing: box              # "" the user's only wing
  timeout: 15s
  critical: 5s`,
		Params: func() any { return &wingSessionParams{} },
		New: func(p any, env probe.Env) (probe.Check, error) {
			c := &wingSession{p: *p.(*wingSessionParams)}
			var err error
			if c.base, c.hc, err = (wingTarget{c.p.URL, c.p.CAFile, c.p.UserToken}).build(); err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

type wingSession struct {
	p    wingSessionParams
	base string
	hc   *http.Client
}

// maxSessionOutput bounds what the check keeps of the command's output.
const maxSessionOutput = 64 << 10

// boundedBuffer keeps the first maxSessionOutput bytes written to it.
type boundedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxSessionOutput - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// excerpt is the tail of the output, quoted, for a message.
func excerpt(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = "..." + s[len(s)-200:]
	}
	return fmt.Sprintf("%q", s)
}

func (c *wingSession) Run(ctx context.Context) probe.Result {
	var res probe.Result
	end := res.Begin("lookup")
	wings, err := listWings(ctx, c.hc, c.base, c.p.UserToken.Value)
	end()
	if err != nil {
		return res.Fail(stageOf(err, "lookup"), err)
	}
	w, err := pickWing(wings, c.p.Wing, true)
	if err != nil {
		return res.Fail("lookup", err)
	}
	wingDetails(&res, w)

	nonceBytes := make([]byte, 12)
	_, _ = rand.Read(nonceBytes)
	nonce := "warren-probe-" + hex.EncodeToString(nonceBytes)
	// The nonce is printed by the shell, not typed: a PTY echo of input
	// cannot fake it. The command line travels sealed to the wing's key.
	cmdline := "echo " + nonce

	cl := &wingclient.Client{RelayURL: c.base, Token: c.p.UserToken.Value, HTTPClient: c.hc}
	startAt := time.Now()
	sess, err := cl.Open(ctx, wingclient.SessionOptions{WingID: w.WingID, Command: cmdline, Cwd: c.p.Cwd, Cols: 80, Rows: 24})
	if err != nil {
		res.Stages = append(res.Stages, probe.Stage{Name: "start", Duration: time.Since(startAt)})
		return res.Fail(stageOf(err, "start"), sessionError(err, w.WingID))
	}
	defer sess.Close()

	var (
		mu        sync.Mutex
		startedAt time.Time
	)
	onEvent := func(ev wingclient.Event) {
		if ev.Kind == "started" {
			mu.Lock()
			startedAt = time.Now()
			mu.Unlock()
		}
	}
	out := &boundedBuffer{}
	code, err := sess.Run(ctx, out, onEvent, 0)
	done := time.Now()
	mu.Lock()
	started := startedAt
	mu.Unlock()
	if started.IsZero() {
		res.Stages = append(res.Stages, probe.Stage{Name: "start", Duration: done.Sub(startAt)})
		if err == nil {
			err = errors.New("the session ended before pty.started")
		} else if ctx.Err() != nil {
			err = fmt.Errorf("no pty.started from wing %s: %w (the wing did not answer the session start)", w.WingID, ctx.Err())
		}
		return res.Fail("start", sessionError(err, w.WingID))
	}
	res.Stages = append(res.Stages,
		probe.Stage{Name: "start", Duration: started.Sub(startAt)},
		probe.Stage{Name: "exchange", Duration: done.Sub(started)})
	res.Detail("session", sess.ID())
	got := out.String()
	switch {
	case err != nil && ctx.Err() != nil:
		// Do not leave the command running on the wing.
		kctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = sess.Kill(kctx)
		cancel()
		return res.Failf("exchange", "session %s on wing %s: no exit before the timeout (%v); output so far %s", sess.ID(), w.WingID, ctx.Err(), excerpt(got))
	case err != nil:
		return res.Fail("exchange", fmt.Errorf("session %s on wing %s: %w", sess.ID(), w.WingID, sessionError(err, w.WingID)))
	case !strings.Contains(got, nonce):
		return res.Failf("exchange", "session %s on wing %s: the output lacks the nonce (exit code %d); got %s", sess.ID(), w.WingID, code, excerpt(got))
	case code != 0:
		return res.Failf("exchange", "session %s on wing %s: the command printed the nonce but exited with code %d", sess.ID(), w.WingID, code)
	}
	res.Detail("exit_code", "0")
	res.Message = fmt.Sprintf("wing %s: session %s ran echo, nonce returned decrypted, exit code 0, in %s",
		describeWing(w), sess.ID(), ms(total(res.Stages)))
	return res
}

// sessionError says what a session failure means for an operator.
func sessionError(err error, wing string) error {
	var re *wingclient.RemoteError
	switch {
	case errors.Is(err, wingclient.ErrUnauthorized):
		return fmt.Errorf("the relay refused the user token on /ws/pty (HTTP 401): %w", err)
	case errors.As(err, &re) && strings.Contains(re.Msg, "no wing connected"):
		return fmt.Errorf("wing %s is not connected to the relay: %w", wing, err)
	case errors.As(err, &re):
		return fmt.Errorf("wing %s refused the session: %w", wing, err)
	}
	return err
}
