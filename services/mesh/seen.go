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

// DefaultMaxSeenUpdateBytes bounds the memory of the remembered UpdateIDs
// (about 500 000 entries, more than an hour of updates of a 1000-node mesh
// flooding every 10 s).
const DefaultMaxSeenUpdateBytes = 24 << 20

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
	fifo  []seenEntry // fifo[head:] in arrival order
	head  int
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
	if len(s.index) >= s.max {
		s.pop()
		s.evicted++
		evicted = true
	}
	s.index[k] = struct{}{}
	s.fifo = append(s.fifo, seenEntry{key: k, at: now.UnixNano()})
	return evicted
}

// expire forgets every entry that arrived before cutoff.
func (s *seenSet) expire(cutoff time.Time) {
	c := cutoff.UnixNano()
	for s.head < len(s.fifo) && s.fifo[s.head].at < c {
		s.pop()
	}
}

// pop forgets the oldest entry, compacting the FIFO once half of it is
// consumed.
func (s *seenSet) pop() {
	if s.head >= len(s.fifo) {
		return
	}
	delete(s.index, s.fifo[s.head].key)
	s.head++
	if s.head == len(s.fifo) {
		s.fifo, s.head = s.fifo[:0], 0
	} else if s.head >= 1024 && s.head*2 >= len(s.fifo) {
		n := copy(s.fifo, s.fifo[s.head:])
		s.fifo, s.head = s.fifo[:n], 0
	}
}
