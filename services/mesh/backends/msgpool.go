package backends

import "sync"

// PooledMessageCap is the capacity of the pooled message buffers: one
// mesh QUIC packet (at most 1452 bytes) plus the 36-byte data header fits.
// Reusing these buffers instead of allocating one per forwarded packet
// keeps the garbage collector from running every few milliseconds under
// load.
const PooledMessageCap = 2048

var messagePool = sync.Pool{New: func() any { return new([PooledMessageCap]byte) }}

// MessageBuffer returns an empty buffer with capacity PooledMessageCap.
// Build a message in it without growing it, then hand it over (Enqueue)
// or give it back with ReleaseMessage.
func MessageBuffer() []byte { return messagePool.Get().(*[PooledMessageCap]byte)[:0] }

// ReleaseMessage gives msg's buffer back to the pool when it is a whole
// pooled buffer (capacity PooledMessageCap, as from MessageBuffer or
// Recv); anything else is left to the garbage collector. The caller must
// own msg and must not touch it, or any slice of it, afterwards.
func ReleaseMessage(msg []byte) {
	if cap(msg) == PooledMessageCap {
		messagePool.Put((*[PooledMessageCap]byte)(msg[:PooledMessageCap]))
	}
}

// pooledAlloc allocates a message of n bytes from the pool when it fits
// (the receiver owns it and may ReleaseMessage it): the frameReader
// allocator of TCP sessions.
func pooledAlloc(n int) []byte {
	if n <= PooledMessageCap {
		return MessageBuffer()[:n]
	}
	return make([]byte, n)
}
