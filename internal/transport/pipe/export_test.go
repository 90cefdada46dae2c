package pipe

// HeldBuffers is how many pooled copy buffers are held right now.
func HeldBuffers() int64 { return held.Load() }

// SmallBufSize, BufSize and BigBufSize are the copy buffer sizes, for
// boundary tests.
const (
	SmallBufSize = smallBufSize
	BufSize      = bufSize
	BigBufSize   = bigBufSize
)
