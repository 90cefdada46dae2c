package turnprovider

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNamesAndLookup(t *testing.T) {
	if got := strings.Join(Names(), ","); got != "generic-turn,turn-rest,vk" {
		t.Fatalf("Names() = %s", got)
	}
	if p, err := Lookup("Generic-TURN"); err != nil || p.Name() != "generic-turn" {
		t.Fatalf("case-insensitive lookup: %v %v", p, err)
	}
	_, err := Lookup("x")
	if !errors.Is(err, ErrNotRegistered) || !strings.Contains(err.Error(), `provider "x" is not registered`) {
		t.Fatalf("unknown provider error: %v", err)
	}
}

func TestGenericTURN(t *testing.T) {
	ctx := context.Background()
	res, err := Resolve(ctx, "generic-turn", Request{Link: "generic-turn://al%40ice:p%3Aw@turn.example:3478"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Address != "turn.example:3478" || res.Username != "al@ice" || res.Password != "p:w" || res.Method != MethodStaticLink || res.TTL != 0 {
		t.Fatalf("resolution %+v", res)
	}
	res6, err := Resolve(ctx, "generic-turn", Request{Link: "generic-turn://u:p@[::1]:3478"})
	if err != nil || res6.Address != "[::1]:3478" {
		t.Fatalf("ipv6: %v %v", res6, err)
	}
	bad := map[string]string{
		"generic-turn://u:p@h:3478?transport=tcp": "invalid generic-turn link: query is not supported",
		"generic-turn://u:p@h:3478?":              "invalid generic-turn link: query is not supported",
		"generic-turn://:p@h:3478":                "invalid generic-turn link: username must not be empty",
		"generic-turn://u@h:3478":                 "invalid generic-turn link: password must not be empty",
		"generic-turn://u:@h:3478":                "invalid generic-turn link: password must not be empty",
		"generic-turn://u:p@h:0":                  "invalid generic-turn link: port must be 1-65535",
		"generic-turn://u:p@h:70000":              "invalid generic-turn link: port must be 1-65535",
		"generic-turn://u:p@h":                    "invalid generic-turn link: port must be 1-65535",
		"generic-turn://u:p@h:1/x":                "invalid generic-turn link: path is not supported",
		"generic-turn://u:p@h:1#f":                "invalid generic-turn link: fragment is not supported",
		"turn://u:p@h:1":                          "invalid generic-turn link: scheme must be generic-turn://",
		"generic-turn://u:p@:1":                   "invalid generic-turn link: host must not be empty",
	}
	for link, want := range bad {
		_, err := Resolve(ctx, "generic-turn", Request{Link: link})
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", link, err, want)
		}
		var re *ResolveError
		if !errors.As(err, &re) || re.Artifact.Outcome.ProviderError == nil {
			t.Errorf("%s: error carries no artifact", link)
		}
	}
}

func TestTURNRest(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	res, err := Resolve(context.Background(), "turn-rest", Request{Link: "turn-rest://alice@h:3478?ttl=10m", RESTSecret: "s3cr3t", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.Username != "1900000600:alice" {
		t.Fatalf("username %q", res.Username)
	}
	mac := hmac.New(sha1.New, []byte("s3cr3t"))
	mac.Write([]byte(res.Username))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); res.Password != want {
		t.Fatalf("password %q want %q", res.Password, want)
	}
	if res.TTL != 10*time.Minute || !res.RefreshAt().Equal(now.Add(8*time.Minute)) || res.Stale(now.Add(7*time.Minute)) || !res.Stale(now.Add(8*time.Minute)) {
		t.Fatalf("ttl/refresh %v %v", res.TTL, res.RefreshAt())
	}
	def, _ := Resolve(context.Background(), "turn-rest", Request{Link: "turn-rest://a@h:1", RESTSecret: "x", Now: now})
	if def.TTL != time.Hour {
		t.Fatalf("default ttl %v", def.TTL)
	}
	bad := map[string]string{
		"turn-rest://u:pw@h:3478":      "invalid turn-rest link: secret must not be in the link",
		"turn-rest://u@h:3478?ttl=30s": "invalid turn-rest link: ttl 30s is below the minimum 1m0s",
		"turn-rest://u@h:3478?ttl=x":   `invalid turn-rest link: ttl "x" is not a Go duration (e.g. 1h, 30m)`,
		"turn-rest://u@h:3478?foo=1":   `invalid turn-rest link: query key "foo" is not supported (only ttl)`,
		"turn-rest://@h:3478":          "invalid turn-rest link: username must not be empty",
		"turn-rest://u@h:3478/p":       "invalid turn-rest link: path is not supported",
		"turn-rest://u@h:99999":        "invalid turn-rest link: port must be 1-65535",
	}
	for link, want := range bad {
		_, err := Resolve(context.Background(), "turn-rest", Request{Link: link, RESTSecret: "s"})
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", link, err, want)
		}
	}
	_, err = Resolve(context.Background(), "turn-rest", Request{Link: "turn-rest://u@h:1"})
	if !errors.Is(err, ErrMissingSecret) {
		t.Fatalf("missing secret: %v", err)
	}
}

func TestOverride(t *testing.T) {
	res, _ := Resolve(context.Background(), "generic-turn", Request{Link: "generic-turn://u:p@h:3478"})
	if err := res.Override("127.0.0.1", 0); err != nil || res.Address != "127.0.0.1:3478" {
		t.Fatal(res.Address, err)
	}
	if err := res.Override("", 5000); err != nil || res.Address != "127.0.0.1:5000" || res.Artifact.Outcome.Resolution.Address != "127.0.0.1:5000" {
		t.Fatal(res.Address, err)
	}
}

func TestArtifactHasNoSecrets(t *testing.T) {
	res, err := Resolve(context.Background(), "generic-turn", Request{Link: "generic-turn://userZZ:passYY@h:3478"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := res.Artifact.JSON()
	s := string(b)
	for _, secret := range []string{"userZZ", "passYY"} {
		if strings.Contains(s, secret) {
			t.Fatalf("artifact leaks %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{`"provider": "generic-turn"`, `"resolution_method": "static_link"`, `"name": "generic_turn_static_link"`,
		`"method": "PARSE"`, RedactedUsername, RedactedPassword, `"address": "h:3478"`, `"result_kind": "resolved"`} {
		if !strings.Contains(s, want) {
			t.Errorf("artifact lacks %s:\n%s", want, s)
		}
	}
}

func FuzzParseLinks(f *testing.F) {
	for _, s := range []string{"generic-turn://u:p@h:3478", "turn-rest://u@h:1?ttl=2m", "generic-turn://u:p@[::1]:1", "%", "generic-turn://u:p@h:1?x#y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, link string) {
		for _, name := range []string{"generic-turn", "turn-rest"} {
			res, err := Resolve(context.Background(), name, Request{Link: link, RESTSecret: "s"})
			if err != nil {
				var re *ResolveError
				if !errors.As(err, &re) {
					t.Fatalf("%s error without artifact: %v", name, err)
				}
				continue
			}
			if res.Address == "" || res.Username == "" || res.Password == "" {
				t.Fatalf("%s: incomplete resolution %+v", name, res)
			}
			b, _ := json.Marshal(res.Artifact)
			if len(res.Password) > 3 && strings.Contains(string(b), res.Password) {
				t.Fatalf("artifact leaks the password: %s", b)
			}
		}
	})
}
