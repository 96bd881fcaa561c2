package backends

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// TCP framing (docs/protocol.md §3.2): every message is preceded by its length as a
// little-endian uint16. Nothing else is on the stream.

// frameHeaderLen is the size of the length prefix.
const frameHeaderLen = 2

// AppendFrame appends msg with its length prefix to dst. It refuses empty
// messages (they crash upstream receivers) and messages over
// MaxMessageSize (upstream would wrap the length and corrupt the stream).
func AppendFrame(dst, msg []byte) ([]byte, error) {
	if err := checkFrameLen(len(msg)); err != nil {
		return dst, err
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...), nil
}

func checkFrameLen(n int) error {
	switch {
	case n == 0:
		return ErrEmptyMessage
	case n > MaxMessageSize:
		return fmt.Errorf("frame of %d bytes: %w", n, ErrMessageTooLarge)
	}
	return nil
}

// ReadFrame reads one framed message. It returns io.EOF only at a clean
// frame boundary, io.ErrUnexpectedEOF (wrapped) for a truncated frame and
// ErrEmptyMessage (wrapped) for a zero-length frame.
func ReadFrame(r io.Reader) ([]byte, error) {
	f := frameReader{r: r, alloc: func(n int) []byte { return make([]byte, n) }}
	return f.readMessage()
}

// frameReader reads one frame per call, and a call that fails part way
// (a read deadline passing) keeps what it had read of the frame: the next
// call resumes there. That lets a session read its connection itself,
// under a deadline, without losing its place in the stream. It returns
// the errors ReadFrame documents.
type frameReader struct {
	r     io.Reader
	alloc func(n int) []byte
	hdr   [frameHeaderLen]byte
	nhdr  int    // header bytes read so far
	msg   []byte // the frame body being read; nil between frames
	nmsg  int    // body bytes read so far
}

func (f *frameReader) readMessage() ([]byte, error) {
	for f.nhdr < frameHeaderLen {
		n, err := f.r.Read(f.hdr[f.nhdr:])
		f.nhdr += n
		if f.nhdr == frameHeaderLen {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if f.nhdr == 0 {
					return nil, io.EOF
				}
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read frame length: %w", err)
		}
	}
	if f.msg == nil {
		n := int(binary.LittleEndian.Uint16(f.hdr[:]))
		if n == 0 {
			return nil, fmt.Errorf("read frame: zero length: %w", ErrEmptyMessage)
		}
		f.msg, f.nmsg = f.alloc(n), 0
	}
	for f.nmsg < len(f.msg) {
		n, err := f.r.Read(f.msg[f.nmsg:])
		f.nmsg += n
		if f.nmsg == len(f.msg) {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read %d-byte frame body: %w", len(f.msg), err)
		}
	}
	msg := f.msg
	f.msg, f.nhdr = nil, 0
	return msg, nil
}

// frameWriter writes batches of frames through one buffer and flushes once
// per batch.
type frameWriter struct {
	bw  *bufio.Writer
	hdr [frameHeaderLen]byte
}

// tcpBufferSize holds one maximal frame, so a batch of small frames costs a
// single write.
const tcpBufferSize = frameHeaderLen + MaxMessageSize

func newFrameWriter(w io.Writer) *frameWriter {
	return &frameWriter{bw: bufio.NewWriterSize(w, tcpBufferSize)}
}

func (w *frameWriter) writeBatch(batch [][]byte) error {
	for _, msg := range batch {
		if err := checkFrameLen(len(msg)); err != nil {
			return err
		}
		binary.LittleEndian.PutUint16(w.hdr[:], uint16(len(msg)))
		if _, err := w.bw.Write(w.hdr[:]); err != nil {
			return err
		}
		if _, err := w.bw.Write(msg); err != nil {
			return err
		}
	}
	return w.bw.Flush()
}
