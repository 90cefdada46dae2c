package ticket

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzMintRequest: the mint decoder and validator never panic, and either
// return an error the handler can answer (400/413) or a request that
// satisfies every rule.
func FuzzMintRequest(f *testing.F) {
	for _, s := range []string{
		`{"workspace_id":"ws1","source_id":"a","dest_id":"b"}`,
		`{"workspace_id":"ws1","source_id":"a","dest_id":"b","ttl_seconds":300,"max_bytes":1073741824}`,
		`{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":0}`,
		`{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":9223372036854775807}`,
		`{"workspace_id":"w","source_id":"s","dest_id":"d","max_bytes":-1}`,
		`{"workspace_id":"w","source_id":"s","dest_id":"d","max_bytes":91000000000000}`,
		`{"workspace_id":"w","source_id":"s","dest_id":"d","x":1}`,
		`{"workspace_id":null}`, `[]`, `{}`, ``, `{"ttl_seconds":1e3}`, `{} {}`, `"\u0000"`,
	} {
		f.Add([]byte(s))
	}
	r, err := New(Config{Authorize: testAuthorize, MaxTTL: time.Hour, MaxBytesLimit: 1 << 40}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = r.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeMintRequest(bytes.NewReader(data))
		if err == nil {
			req, err = r.normalize(req)
		}
		if err != nil {
			e, ok := errors.AsType[*Error](err)
			if !ok || e.Status != 400 || e.Msg == "" || !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %#v is not a 400 *Error", err)
			}
			return
		}
		if req.WorkspaceID == "" || req.SourceID == "" || req.DestID == "" {
			t.Fatalf("accepted empty ids: %+v", req)
		}
		if req.TTL <= 0 || req.TTL > time.Hour || req.TTL%time.Second != 0 {
			t.Fatalf("accepted TTL %v", req.TTL)
		}
		if req.MaxBytes < 1 || req.MaxBytes > 1<<40 {
			t.Fatalf("accepted MaxBytes %d", req.MaxBytes)
		}
	})
}
