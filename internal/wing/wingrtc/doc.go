// Package wingrtc holds what the wing and its clients share for direct
// sessions (docs/protocols/wing.md §2.8): the pion WebRTC setup (ICE
// servers, which addresses host candidates may use), flow-controlled
// DataChannel writes, and the reassembly of a byte stream that arrives in
// pieces over two paths (the relay and the DataChannel), each piece
// carrying its offset, so that a switch between them neither loses nor
// repeats a byte.
package wingrtc
