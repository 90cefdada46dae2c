package wingproto

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
)

// ErrChunkTooLarge is returned by DecompressChunk for a chunk that inflates
// past ChunkSize.
var ErrChunkTooLarge = errors.New("wingproto: replay chunk inflates past 128 KiB")

// CompressChunks splits replay bytes into ChunkSize pieces and gzips each
// as a complete, independent stream (docs/protocols/wing.md §2.5).
func CompressChunks(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := min(len(data), ChunkSize)
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data[:n])
		zw.Close()
		out = append(out, b.Bytes())
		data = data[n:]
	}
	return out
}

// DecompressChunk inflates one replay chunk, refusing more than ChunkSize
// bytes of output (a defence against gzip bombs from a hostile peer).
func DecompressChunk(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	out, err := io.ReadAll(io.LimitReader(zr, ChunkSize+1))
	if err != nil {
		return nil, err
	}
	if len(out) > ChunkSize {
		return nil, ErrChunkTooLarge
	}
	return out, nil
}
