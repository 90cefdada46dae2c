package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, returning the paths.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "warren test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestHTTPSTicketTransfer serves HTTPS from tls.cert_file/key_file and moves
// a streamed file over it with curl (HTTP/2 by ALPN), digest trailer included.
func TestHTTPSTicketTransfer(t *testing.T) {
	needCurl(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	_, url := startRelay(t, "admin-k", "--tls-cert-file", cert, "--tls-key-file", key)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("relay URL %s is not https", url)
	}
	curl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "--fail", "--cacert", cert, "--max-time", "30"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := curl(url + "/healthz"); !strings.Contains(out, `"status":"ok"`) {
		t.Fatalf("healthz over https: %s", out)
	}
	minted := curl("-X", "POST", "-H", "Authorization: Bearer admin-k", "-H", "Content-Type: application/json",
		"-d", `{"workspace_id":"w","source_id":"a","dest_id":"b"}`, url+"/v1/tickets")
	tk := regexp.MustCompile(`rly_[A-Za-z0-9_-]+`).FindString(minted)
	if tk == "" {
		t.Fatalf("mint over https: %s", minted)
	}
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte(strings.Repeat("over tls ", 50_000)), 0o600)
	dst, hdr := filepath.Join(dir, "dst"), filepath.Join(dir, "hdr")
	get := exec.Command("curl", "-sS", "--fail", "--cacert", cert, "--max-time", "30", "-o", dst, "-D", hdr,
		"-w", "%{http_version}", "-H", "Authorization: Bearer "+tk, url+"/v1/relay/"+tk)
	var getOut strings.Builder
	get.Stdout = &getOut
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	// Streamed (chunked on HTTP/1.1, no length on HTTP/2) from stdin.
	putCmd := exec.Command("curl", "-sS", "--fail-with-body", "--cacert", cert, "--max-time", "30", "-T", "-",
		"-H", "Authorization: Bearer "+tk, url+"/v1/relay/"+tk)
	in, _ := os.Open(src)
	defer in.Close()
	putCmd.Stdin = in
	putOut, err := putCmd.Output()
	if err != nil {
		t.Fatalf("PUT over https: %v %s", err, putOut)
	}
	if err := get.Wait(); err != nil {
		t.Fatalf("GET over https: %v", err)
	}
	want, _ := os.ReadFile(src)
	got, _ := os.ReadFile(dst)
	if string(got) != string(want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	sum := sha256.Sum256(want)
	if !strings.Contains(string(putOut), `"sha256":"`+hex.EncodeToString(sum[:])+`"`) {
		t.Fatalf("PUT answer %s lacks the digest", putOut)
	}
	if getOut.String() != "2" {
		t.Errorf("GET used HTTP version %q, want 2 (ALPN h2)", getOut.String())
	}
}
