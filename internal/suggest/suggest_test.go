package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"listen", "public_url", "tickets.max_bytes"}
	for in, want := range map[string]string{
		"lisen": "listen", "public-url": "public_url", "tickets.maxbytes": "tickets.max_bytes",
		"nothing_like_it": "", "": "",
	} {
		if got := Closest(in, known); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
}
