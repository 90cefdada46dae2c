package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// flowExpected is what `seq 1 n | base64` prints on a PTY: GNU base64
// wraps at 76 columns, and the PTY turns each \n into \r\n.
func flowExpected(n int) []byte {
	var seq bytes.Buffer
	for i := 1; i <= n; i++ {
		seq.WriteString(strconv.Itoa(i))
		seq.WriteByte('\n')
	}
	enc := base64.StdEncoding.EncodeToString(seq.Bytes())
	var out bytes.Buffer
	for len(enc) > 0 {
		k := min(len(enc), 76)
		out.WriteString(enc[:k])
		out.WriteString("\r\n")
		enc = enc[k:]
	}
	return out.Bytes()
}

// TestWingAttachFlowControl: `wing attach --command` through relay-server
// prints about 25 MB (three times the relay's per-user send queue) into a
// pipe that is read slowly and stops for a while. wing attach acknowledges
// what it has written, the wing holds the PTY meanwhile, and every byte
// arrives in order, with no disconnect (reattaching would replay only the
// last 2 MiB and lose the rest).
func TestWingAttachFlowControl(t *testing.T) {
	e := startWingRelay(t)
	e.startWing(t, e.url, "box1")
	const lines = 2_200_000 // about 25 MB: three relay send queues
	want := flowExpected(lines)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "wing"), "attach", "--relay", e.url,
		"--command", "seq 1 "+strconv.Itoa(lines)+" | base64", "box1")
	cmd.Env, cmd.Dir = e.userEnv(t), t.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	var got int64
	buf := make([]byte, 64<<10)
	paused := false
	for {
		n, err := out.Read(buf)
		sum.Write(buf[:n])
		got += int64(n)
		if !paused && got > int64(len(want))/4 {
			// The reader stops: wing attach blocks writing, acks stop,
			// and the wing stops reading the PTY.
			paused = true
			time.Sleep(3 * time.Second)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // a slow reader throughout
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wing attach: %v\nstderr: %s", err, stderr.String())
	}
	if got != int64(len(want)) {
		t.Fatalf("got %d bytes, want %d\nstderr: %s", got, len(want), stderr.String())
	}
	if exp := sha256.Sum256(want); !bytes.Equal(sum.Sum(nil), exp[:]) {
		t.Fatal("the output arrived altered or out of order")
	}
}
