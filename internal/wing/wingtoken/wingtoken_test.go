package wingtoken

import (
	"errors"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/auth/token"
)

func newIssuer(t *testing.T) *Issuer {
	k, err := token.GenerateKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewKeyring([]token.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{Keys: ring, Issuer: "http://relay"}
}

func TestIssueVerify(t *testing.T) {
	i := newIssuer(t)
	tok, _, err := i.Issue(Claims{Kind: KindWing, UserID: "alice", WingID: "m1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := i.Verify(tok, KindWing)
	if err != nil || c.UserID != "alice" || c.WingID != "m1" {
		t.Fatal(c, err)
	}
	if _, err := i.Verify(tok, KindUser); !errors.Is(err, ErrInvalid) {
		t.Fatal("wing token accepted as user token")
	}
	if _, err := i.Verify(tok+"x", KindWing); !errors.Is(err, ErrInvalid) {
		t.Fatal("tampered token accepted")
	}
	other := newIssuer(t)
	if _, err := other.Verify(tok, KindWing); err == nil {
		t.Fatal("foreign key accepted")
	}
	// A tunnel token is not a wing token.
	ti, _ := token.New(token.Config{Keys: i.Keys, Issuer: i.Issuer})
	tt, _, _ := ti.Issue(token.Grant{TunnelID: "tun", TunnelCreated: time.Now(), Scopes: []string{"connect"}, TTL: time.Hour})
	if _, err := i.Verify(tt, KindUser); err == nil {
		t.Fatal("tunnel token accepted")
	}
	if _, err := ti.Verify(tok); err == nil {
		t.Fatal("wing token accepted as tunnel token")
	}
	if _, _, err := i.Issue(Claims{Kind: "admin", UserID: "a"}, time.Hour); err == nil {
		t.Fatal("bad kind accepted")
	}
}

func FuzzVerify(f *testing.F) {
	k, _ := token.GenerateKey(time.Now())
	ring, _ := token.NewKeyring([]token.Key{k})
	i := &Issuer{Keys: ring, Issuer: "http://relay"}
	tok, _, _ := i.Issue(Claims{Kind: KindUser, UserID: "u"}, time.Hour)
	f.Add(tok)
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := i.Verify(s, KindUser); err == nil && c.UserID == "" {
			t.Fatal("empty subject accepted")
		}
	})
}
