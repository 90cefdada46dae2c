package wing

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/wing/wingclient"
)

// knownWings remembers each wing's identity key the first time the user
// side sees it (trust on first use), per relay, in a file like ssh's
// known_hosts: one "<relay> <wing_id> <public_key>" line per wing, the two
// names path-escaped. A wing that later presents another key is refused:
// the relay could otherwise hand the user any key and read the session.
type knownWings struct {
	path  string
	relay string
}

// knownWingsPath is $XDG_STATE_HOME/warren/known_wings, else
// ~/.local/state/warren/known_wings.
func knownWingsPath() (string, error) {
	return cli.StatePath("known_wings", "known_wings")
}

func openKnownWings(relay string) (*knownWings, error) {
	p, err := knownWingsPath()
	if err != nil {
		return nil, err
	}
	return &knownWings{path: p, relay: strings.TrimRight(relay, "/")}, nil
}

type knownWing struct {
	relay, wingID, pub string
}

// read returns the file's entries; a missing file has none.
func (k *knownWings) read() ([]knownWing, error) {
	f, err := os.Open(k.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("known wings: %w", err)
	}
	defer f.Close()
	var out []knownWing
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fs := strings.Fields(line)
		relay, err1 := url.PathUnescape(fieldAt(fs, 0))
		wing, err2 := url.PathUnescape(fieldAt(fs, 1))
		if len(fs) != 3 || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("known wings %s:%d: expected \"<relay> <wing_id> <public_key>\"; fix or delete the line", k.path, n)
		}
		out = append(out, knownWing{relay, wing, fs[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("known wings %s: %w", k.path, err)
	}
	return out, nil
}

func fieldAt(fs []string, i int) string {
	if i < len(fs) {
		return fs[i]
	}
	return ""
}

// fingerprint is how keys are shown: SHA256 of the raw key, like ssh.
func fingerprint(pub string) string {
	raw, err := base64.StdEncoding.DecodeString(pub)
	if err != nil {
		raw = []byte(pub)
	}
	sum := sha256.Sum256(raw)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// KeyChangedError: a wing presented another key than the one remembered.
type KeyChangedError struct {
	WingID, Relay, Old, New, File string
}

func (e *KeyChangedError) Error() string {
	return fmt.Sprintf(`wing %s presents a different identity key than the one remembered for it on %s:
  remembered: %s
  presented:  %s
Someone may be impersonating the wing (or the relay is), or the wing's owner replaced its identity key.
Nothing was sent to it. If the owner confirms the new key (their 'wing serve' logs its public_key), accept it with:
  wing trust --reset %s --relay %s
(remembered keys are in %s)`, e.WingID, e.Relay, fingerprint(e.Old), fingerprint(e.New), e.WingID, e.Relay, e.File)
}

// check remembers pub for wingID on first sight and refuses another key
// later.
func (k *knownWings) check(wingID, pub string) error {
	if wingID == "" || pub == "" {
		return nil
	}
	all, err := k.read()
	if err != nil {
		return err
	}
	for _, e := range all {
		if e.relay == k.relay && e.wingID == wingID {
			if e.pub == pub {
				return nil
			}
			return &KeyChangedError{WingID: wingID, Relay: k.relay, Old: e.pub, New: pub, File: k.path}
		}
	}
	if strings.ContainsAny(pub, " \t\r\n") {
		return fmt.Errorf("wing %s: malformed identity key %q", wingID, pub)
	}
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return fmt.Errorf("known wings: %w", err)
	}
	// One append per new wing: concurrent first uses add whole lines, and
	// the first line for a wing is the one that counts.
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("known wings: %w", err)
	}
	_, werr := fmt.Fprintf(f, "%s %s %s\n", url.PathEscape(k.relay), url.PathEscape(wingID), pub)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("known wings %s: %w", k.path, werr)
	}
	return nil
}

// reset forgets wingID's key on this relay; it reports whether there was one.
func (k *knownWings) reset(wingID string) (bool, error) {
	all, err := k.read()
	if err != nil {
		return false, err
	}
	var keep []string
	found := false
	for _, e := range all {
		if e.relay == k.relay && e.wingID == wingID {
			found = true
			continue
		}
		keep = append(keep, fmt.Sprintf("%s %s %s\n", url.PathEscape(e.relay), url.PathEscape(e.wingID), e.pub))
	}
	if !found {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(k.path), ".known_wings-*")
	if err != nil {
		return false, fmt.Errorf("known wings: %w", err)
	}
	_, werr := tmp.WriteString(strings.Join(keep, ""))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), k.path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return false, fmt.Errorf("known wings %s: %w", k.path, werr)
	}
	return true, nil
}

// newClient is a wingclient for cfg that checks wing keys against the
// user's known wings.
func newClient(cfg *Config) (*wingclient.Client, error) {
	kw, err := openKnownWings(cfg.Relay)
	if err != nil {
		return nil, err
	}
	return &wingclient.Client{RelayURL: cfg.Relay, Token: cfg.UserToken, VerifyKey: kw.check}, nil
}

func trustCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust [--reset] [WING]",
		Short: "List or forget the wing identity keys remembered on first use",
		Long: `The first time ls, attach or a request sees a wing, its identity key is
remembered (in $XDG_STATE_HOME/warren/known_wings, else
~/.local/state/warren/known_wings), per relay. A wing that later shows another
key is refused: someone may be impersonating it. When its owner replaced the
key on purpose, forget the old one with --reset; the next connection
remembers the new key.

  wing trust                 # keys remembered for this relay
  wing trust --reset box1    # accept box1's new key on next use`,
		Args: cobra.MaximumNArgs(1),
	}
	reset := cmd.Flags().Bool("reset", false, "forget WING's remembered key")
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := needRelay(cfg); err != nil {
			return err
		}
		kw, err := openKnownWings(cfg.Relay)
		if err != nil {
			return err
		}
		if *reset {
			if len(args) != 1 {
				return cli.Usagef("--reset needs the WING whose key to forget")
			}
			found, err := kw.reset(args[0])
			if err != nil {
				return err
			}
			if !found {
				fmt.Fprintf(app.Stdout, "no key remembered for wing %s on %s\n", args[0], kw.relay)
				return nil
			}
			fmt.Fprintf(app.Stdout, "forgot the key of wing %s on %s; the next connection remembers the key it sees\n", args[0], kw.relay)
			return nil
		}
		all, err := kw.read()
		if err != nil {
			return err
		}
		type row struct {
			WingID      string `json:"wing_id"`
			PublicKey   string `json:"public_key"`
			Fingerprint string `json:"fingerprint"`
		}
		rows := []row{}
		for _, e := range all {
			if e.relay == kw.relay && (len(args) == 0 || args[0] == e.wingID) {
				rows = append(rows, row{e.wingID, e.pub, fingerprint(e.pub)})
			}
		}
		if out.JSON() {
			return cli.WriteJSON(app.Stdout, rows)
		}
		tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WING\tFINGERPRINT\tPUBLIC KEY")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.WingID, r.Fingerprint, r.PublicKey)
		}
		return tw.Flush()
	}
	return cmd
}
