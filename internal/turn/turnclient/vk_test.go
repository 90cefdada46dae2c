package turnclient

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
	"github.com/warrenhq/warren/internal/turn/turnprovider/vkfake"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// pageSolver answers a captcha the way a person would: it opens the
// challenge page and types back what it shows.
type pageSolver struct{ asked chan turnprovider.Challenge }

func (s pageSolver) Solve(ctx context.Context, c turnprovider.Challenge) (turnprovider.ChallengeAnswer, error) {
	s.asked <- c
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return turnprovider.ChallengeAnswer{}, err
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return turnprovider.ChallengeAnswer{Key: vkfake.CaptchaAnswerFromPage(string(page))}, nil
}

// TestVKThroughFake: the vk provider through the fake VK and a REST-only
// TURN lab; a captcha at the first resolution goes to the Solver; the
// short-lived credentials are re-resolved at 80 % of their TTL (again
// through a captcha) and data still flows.
func TestVKThroughFake(t *testing.T) {
	const secret = "vk-lab-secret"
	lab := startLab(t, turnlab.Config{RESTSecret: secret, DisableStaticUser: true})
	f, err := vkfake.New(vkfake.Config{TURNAddr: lab.TURNUDP, RESTSecret: secret, TTL: 4 * time.Second, Captchas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer turnprovider.SetVKBaseURLForTest(f.URL())()
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
	cfg := baseConfig(lab, peer, "udp", "udp")
	cfg.Provider, cfg.Link = "vk", "https://vk.com/call/join/turnclient-test"
	solver := pageSolver{asked: make(chan turnprovider.Challenge, 4)}
	cfg.Solver = solver
	r := startClient(t, cfg)
	r.waitReady(t)
	if c := <-solver.asked; c.Stage != turnprovider.VKStageToken {
		t.Fatalf("challenge %+v", c)
	}
	conn, err := net.Dial("udp4", r.local)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoOnce(t, conn, []byte("before rotation"))
	f.SetCaptchas(1)
	deadline := time.Now().Add(30 * time.Second)
	for r.client.rotations.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no credential rotation within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	echoOnce(t, conn, []byte("after rotation"))
	if f.Hits(vkfake.StageJoin) < 2 || f.Solved() < 2 || len(f.Rejects()) != 0 {
		t.Fatalf("joins %d solved %d rejects %v", f.Hits(vkfake.StageJoin), f.Solved(), f.Rejects())
	}
}
