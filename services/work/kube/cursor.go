package kube

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"time"
)

// cursor is where a timestamped log stream stands: the last line written
// (or being written) has timestamp Time, Lines complete lines carrying
// exactly that timestamp were written, and Partial bytes of the line after
// them (a long line copied in pieces, or a stream cut mid-line).
//
// The kubelet prefixes every line with its RFC 3339 timestamp (nanoseconds)
// when asked for timestamps, and sinceTime only has second resolution: a
// stream reopened with sinceTime = Time replays some lines already written.
// Skipping lines older than Time, then Lines lines with timestamp Time, then
// Partial bytes resumes exactly where the last stream broke, even when
// several lines share a timestamp (upstream skips every line with an equal
// timestamp, losing them, and restarts a line it had half written).
type cursor struct {
	Time    time.Time `json:"Time"`
	Lines   int64     `json:"Lines"`
	Partial int64     `json:"Partial"`
}

// maxTimestamp bounds the prefix scanned for a timestamp.
const maxTimestamp = 64

// copier copies a timestamped log stream to w from cursor cur on, keeping
// cur up to date with every byte written.
type copier struct {
	w io.Writer
	// lock, if set, is held over each write and its cursor update, so
	// that whoever records the cursor under it sees both or neither.
	lock sync.Locker
	cur  cursor
	// written counts the bytes written (for StdoutSize).
	written int64
	// raw copies the stream as is: it carries no timestamps (log
	// reconnect disabled), so there is no cursor.
	raw bool
	// caughtUp reports whether the last stream reached the position the
	// cursor had when it was opened: a stream that ended before (while
	// replaying lines already written) was cut short, whatever its end
	// looked like, so its end says nothing about the end of the log.
	caughtUp bool
}

// copyStream copies one stream to its end. It returns nil at EOF and the
// stream's or the writer's error otherwise; cur reflects what was written
// in either case.
func (c *copier) copyStream(r io.Reader) error {
	if c.raw {
		c.caughtUp = true
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if _, werr := c.write(buf[:n]); werr != nil {
					return werr
				}
			}
			if err != nil {
				return eofNil(err)
			}
		}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	// Per line: its timestamp, whether the line is skipped entirely, how
	// many of its bytes are still to skip, and whether it is the line the
	// cursor's Partial bytes belong to.
	var (
		atStart = true
		ts      time.Time
		hasTS   bool
		skip    bool
		skipN   int64
		// seen counts lines carrying cur.Time in this stream.
		seen int64
	)
	start := c.cur
	c.caughtUp = start.Time.IsZero()
	for {
		var pending []byte // bytes read at the line start that are content
		if atStart {
			prefix, err := readPrefix(br)
			if err != nil {
				// The stream ended inside a line's prefix: nothing of
				// the line is written; a resumed stream replays it.
				// Ending between lines right after the cursor's last
				// complete line is ending at the cursor.
				if len(prefix) == 0 && !start.Time.IsZero() && seen == start.Lines && start.Partial == 0 {
					c.caughtUp = true
				}
				return eofNil(err)
			}
			hasTS = false
			if prefix[len(prefix)-1] == ' ' {
				if t, perr := time.Parse(time.RFC3339Nano, string(prefix[:len(prefix)-1])); perr == nil {
					ts, hasTS = t, true
				}
			}
			if !hasTS {
				pending = prefix
				c.caughtUp = true
			}
			skip, skipN = false, 0
			if hasTS && !start.Time.IsZero() {
				switch {
				case ts.Before(start.Time):
					skip = true
				case ts.Equal(start.Time):
					switch {
					case seen < start.Lines:
						skip = true
					case seen == start.Lines:
						skipN = start.Partial
					}
					seen++
				}
			}
			atStart = false
			if pending != nil {
				_, werr := c.write(pending)
				if werr != nil {
					return werr
				}
				if pending[len(pending)-1] == '\n' {
					atStart = true
					continue
				}
			}
		}
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			eol := chunk[len(chunk)-1] == '\n'
			out := chunk
			if skip {
				out = nil
			} else if skipN > 0 {
				n := min(skipN, int64(len(out)))
				out, skipN = out[n:], skipN-n
			}
			if !skip && skipN == 0 {
				// Past the lines and bytes already written.
				c.caughtUp = true
			}
			if len(out) > 0 {
				c.lockW()
				n, werr := c.w.Write(out)
				c.written += int64(n)
				if hasTS {
					c.advance(ts, int64(n), eol && n == len(out))
				}
				c.unlockW()
				if werr != nil {
					return werr
				}
			} else if hasTS && !skip && eol {
				// The rest of a partially written line was already there.
				c.advance(ts, 0, true)
			}
			if eol {
				atStart = true
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		default:
			return eofNil(err)
		}
	}
}

func (c *copier) lockW() {
	if c.lock != nil {
		c.lock.Lock()
	}
}

func (c *copier) unlockW() {
	if c.lock != nil {
		c.lock.Unlock()
	}
}

// write writes bytes that carry no timestamp.
func (c *copier) write(p []byte) (int, error) {
	c.lockW()
	defer c.unlockW()
	n, err := c.w.Write(p)
	c.written += int64(n)
	return n, err
}

// advance records n bytes of a line with timestamp ts written; eol when
// the line is complete.
func (c *copier) advance(ts time.Time, n int64, eol bool) {
	if !ts.Equal(c.cur.Time) {
		c.cur = cursor{Time: ts}
	}
	if eol {
		c.cur.Lines++
		c.cur.Partial = 0
	} else {
		c.cur.Partial += n
	}
}

// readPrefix reads a line's first bytes up to and including the first
// space or newline, at most maxTimestamp bytes: the timestamp and its
// separator, or the start of a line without one.
func readPrefix(br *bufio.Reader) ([]byte, error) {
	var b []byte
	for len(b) < maxTimestamp {
		c, err := br.ReadByte()
		if err != nil {
			return b, err
		}
		b = append(b, c)
		if c == ' ' || c == '\n' {
			break
		}
	}
	return b, nil
}

func eofNil(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
