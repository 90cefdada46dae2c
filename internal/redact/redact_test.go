package redact

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	cases := []struct{ in, want string }{
		{"generic-turn://alice:pw@h:3478", "generic-turn://<redacted>@h:3478"},
		{"link=turn-rest://bob@turn.example:3478?ttl=1h", "link=turn-rest://<redacted>@turn.example:3478?ttl=1h"},
		{"TURN://u:p@h", "TURN://<redacted>@h"},
		{"turns://u%40x:p%3A@h:5349 next", "turns://<redacted>@h:5349 next"},
		{"https://x/api?access_token=abc&v=1", "https://x/api?access_token=<redacted>&v=1"},
		{"GET /join?token=s3cr3t HTTP/1.1", "GET /join?token=<redacted> HTTP/1.1"},
		{"?a=1&anonym_token=t&session_key=k&credential=c&password=p&username=u",
			"?a=1&anonym_token=<redacted>&session_key=<redacted>&credential=<redacted>&password=<redacted>&username=<redacted>"},
		{`{"username":"1700:u","password": "x\"y","credential":"c","other":"keep"}`,
			`{"username":"<redacted>","password": "<redacted>","credential":"<redacted>","other":"keep"}`},
		{"nothing secret here: turn server at h:3478", "nothing secret here: turn server at h:3478"},
		{"?tokens=keep&mytoken=keep", "?tokens=keep&mytoken=keep"},
	}
	for _, c := range cases {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"generic-turn://a:b@h:1", "?token=x", `{"password":"p"}`, "turn-rest://u@h?ttl=1m", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		// Idempotent: redacting twice changes nothing more.
		if again := String(out); again != out {
			t.Fatalf("not idempotent: %q → %q → %q", s, out, again)
		}
		// A secret planted in a link never survives.
		planted := "generic-turn://user:" + "Zq9SECRETq" + "@h:1 " + s
		if strings.Contains(String(planted), "Zq9SECRETq") && !strings.Contains(s, "Zq9SECRETq") {
			t.Fatalf("secret survived in %q", String(planted))
		}
	})
}
