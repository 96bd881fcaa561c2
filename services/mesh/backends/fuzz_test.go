package backends

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzReadFramePooled feeds arbitrary streams, delivered in arbitrary
// read sizes through the bufio.Reader live TCP sessions use, to the pooled
// frame reader (a frameReader with pooledAlloc): it must return exactly
// what ReadFrame returns from the same bytes, with the same kind of error;
// a body that fits comes in a whole pooled buffer, so ReleaseMessage takes
// it back; and a message held while later frames are read and released is
// never overwritten (no buffer is handed out twice).
func FuzzReadFramePooled(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{3, 0, 1, 2, 3, 1, 0, 9}, uint8(1))
	f.Add([]byte{0, 0}, uint8(0))
	f.Add([]byte{0xff, 0xff, 1}, uint8(2))
	f.Add([]byte{2}, uint8(0))
	f.Add(append([]byte{0x00, 0x08}, make([]byte, 2048)...), uint8(3)) // exactly PooledMessageCap
	f.Add(append([]byte{0x01, 0x08}, make([]byte, 2049)...), uint8(0)) // one byte over
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		want, wantErr := readAllFrames(data)

		var src io.Reader = bytes.NewReader(data)
		if n := int(chunk % 8); n > 0 {
			src = iotest.HalfReader(chunkReader{src, n})
		}
		// One frameReader for the whole stream, as a TCP session keeps.
		fr := frameReader{r: bufio.NewReaderSize(src, 64), alloc: pooledAlloc}
		var held [][]byte // every other message is kept, the rest released
		for i := 0; ; i++ {
			msg, err := fr.readMessage()
			if err != nil {
				if i != len(want) || !sameKind(err, wantErr) {
					t.Fatalf("frame %d: error %v; ReadFrame gave %d frames, then %v", i, err, len(want), wantErr)
				}
				break
			}
			if i >= len(want) || !bytes.Equal(msg, want[i]) {
				t.Fatalf("frame %d differs from ReadFrame's", i)
			}
			if pooled := len(msg) <= PooledMessageCap; pooled != (cap(msg) == PooledMessageCap) {
				t.Fatalf("frame %d: %d bytes in a buffer of capacity %d", i, len(msg), cap(msg))
			}
			if i%2 == 0 {
				held = append(held, msg)
			} else {
				ReleaseMessage(msg)
			}
		}
		for j, msg := range held {
			if !bytes.Equal(msg, want[2*j]) {
				t.Fatalf("held frame %d was overwritten by a later read", 2*j)
			}
			ReleaseMessage(msg)
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// sameKind reports whether two frame errors are of the same documented kind.
func sameKind(a, b error) bool {
	for _, kind := range []error{io.ErrUnexpectedEOF, ErrEmptyMessage} {
		if errors.Is(a, kind) || errors.Is(b, kind) {
			return errors.Is(a, kind) && errors.Is(b, kind)
		}
	}
	return errors.Is(a, io.EOF) && errors.Is(b, io.EOF) && a.Error() == b.Error()
}

// readAllFrames is the fuzz targets' oracle: the frames ReadFrame returns
// from data in one go, and the error that ends them.
func readAllFrames(data []byte) ([][]byte, error) {
	var frames [][]byte
	for r := bytes.NewReader(data); ; {
		msg, err := ReadFrame(r)
		if err != nil {
			return frames, err
		}
		frames = append(frames, msg)
	}
}
