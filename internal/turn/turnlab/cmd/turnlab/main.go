// Command turnlab runs the loopback TURN lab (internal/turn/turnlab) until
// SIGINT/SIGTERM, for `make demo` and manual tries:
//
//	go run ./internal/turn/turnlab/cmd/turnlab
//
// It prints the lab's addresses and credentials as shell assignments on
// stdout (TURN_UDP, TURN_TCP, ECHO_UDP, ECHO_TCP, TURN_USER, TURN_PASS,
// TURN_REALM). TURNLAB_REST_SECRET in the environment also enables TURN
// REST (use-auth-secret) credentials. It is a development tool, not one of
// warren's binaries.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnlab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	lab, err := turnlab.Start(sctx, turnlab.Config{RESTSecret: os.Getenv("TURNLAB_REST_SECRET")})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "turnlab:", err)
		os.Exit(1)
	}
	defer lab.Close()
	fmt.Printf("TURN_UDP=%s\nTURN_TCP=%s\nECHO_UDP=%s\nECHO_TCP=%s\nTURN_USER=%s\nTURN_PASS=%s\nTURN_REALM=%s\n",
		lab.TURNUDP, lab.TURNTCP, lab.EchoUDP, lab.EchoTCP, turnlab.User, turnlab.Password, turnlab.Realm)
	<-ctx.Done()
}
