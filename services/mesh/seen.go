package mesh

import (
	"hash/maphash"
	"time"
)

// seenEntryBytes is what one remembered UpdateID costs: its 64-bit key in
// the map and in the FIFO, its arrival time, and the map's overhead. The
// cost does not depend on the UpdateID's length (a peer chooses it), since
// only a keyed hash of it is kept.
const seenEntryBytes = 48

// DefaultMaxSeenUpdateBytes bounds the memory of the remembered UpdateIDs:
// about 175 000 entries, half an hour of the updates of a 1000-node mesh
// flooding every 10 s. A flood crosses the mesh in seconds, so forgetting
// an UpdateID after minutes instead of an hour loses no dedup (and a stale
// update that comes back is still dropped by its sequence number).
const DefaultMaxSeenUpdateBytes = 8 << 20

// seenSet remembers the UpdateIDs of routing updates already processed, for
// the flood dedup. It keeps a keyed 64-bit hash of each ID, so its memory
// is fixed per entry; the key is random per node, so a peer cannot aim for
// collisions (a chance collision drops one update, which the originator's
// next periodic update repairs). Entries are kept in arrival order: expiry
// removes the oldest, and when the set is full the oldest entry makes room
// for the new one, so a flood of fresh UpdateIDs can never stop routing
// updates from being processed. Not safe for concurrent use (n.mu).
type seenSet struct {
	seed  maphash.Seed
	max   int
	index map[uint64]struct{}
	// ring holds the entries in arrival order: count of them from head,
	// wrapping around. It grows by doubling up to max entries.
	ring        []seenEntry
	head, count int
	// evicted counts entries dropped before their expiry to make room.
	evicted uint64
}

type seenEntry struct {
	key uint64
	at  int64 // unix nanoseconds
}

func newSeenSet(maxBytes int) *seenSet {
	return &seenSet{seed: maphash.MakeSeed(), max: max(maxBytes/seenEntryBytes, 1), index: map[uint64]struct{}{}}
}

func (s *seenSet) key(id string) uint64 { return maphash.String(s.seed, id) }

func (s *seenSet) contains(id string) bool {
	_, ok := s.index[s.key(id)]
	return ok
}

func (s *seenSet) len() int { return len(s.index) }

// add records id (not yet contained) at now, evicting the oldest entry
// when the set is full; it reports whether it had to.
func (s *seenSet) add(id string, now time.Time) (evicted bool) {
	k := s.key(id)
	if _, ok := s.index[k]; ok {
		return false
	}
	if s.count >= s.max {
		s.pop()
		s.evicted++
		evicted = true
	}
	if s.count == len(s.ring) {
		s.grow()
	}
	s.index[k] = struct{}{}
	s.ring[(s.head+s.count)%len(s.ring)] = seenEntry{key: k, at: now.UnixNano()}
	s.count++
	return evicted
}

// grow doubles the ring (up to max entries), keeping the arrival order.
func (s *seenSet) grow() {
	size := min(max(2*len(s.ring), 64), s.max)
	ring := make([]seenEntry, size)
	for i := range s.count {
		ring[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	s.ring, s.head = ring, 0
}

// expire forgets every entry that arrived before cutoff.
func (s *seenSet) expire(cutoff time.Time) {
	c := cutoff.UnixNano()
	for s.count > 0 && s.ring[s.head].at < c {
		s.pop()
	}
}

// pop forgets the oldest entry.
func (s *seenSet) pop() {
	if s.count == 0 {
		return
	}
	delete(s.index, s.ring[s.head].key)
	s.head = (s.head + 1) % len(s.ring)
	s.count--
}
