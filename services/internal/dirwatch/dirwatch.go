// Package dirwatch tells its callers when anything changes inside a set of
// directories, using Linux inotify. It reports "something changed in this
// directory", never what: callers re-read the state they care about.
package dirwatch

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Events that mean a unit directory changed: file writes by any process
// (the command's output, in-place status rewrites), renames into place
// (status updates), creation and deletion of files, and removal of the
// directory itself. Not IN_CLOSE_WRITE: every status update opens and
// closes the lock file for writing, and each such close would wake every
// follower of the unit for nothing (a written file also reports
// IN_MODIFY).
const watchMask = unix.IN_MODIFY | unix.IN_MOVED_TO | unix.IN_CREATE |
	unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// Watcher delivers change callbacks for watched directories. One goroutine
// reads the inotify descriptor; it is stopped by Close.
type Watcher struct {
	log  *slog.Logger
	file *os.File
	// fd is the raw descriptor of file; file.Fd() would switch it to
	// blocking mode and break Close.
	fd int

	mu      sync.Mutex
	closed  bool
	byWD    map[int32]func()
	byPath  map[string]int32
	done    chan struct{}
	closeMu sync.Once
}

// New starts a watcher. A nil logger means slog.Default().
func New(log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.Default()
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("starting inotify: %w", err)
	}
	// A non-blocking descriptor becomes a pollable *os.File, so Close
	// unblocks the reader goroutine.
	w := &Watcher{
		log:    log,
		file:   os.NewFile(uintptr(fd), "inotify"),
		fd:     fd,
		byWD:   make(map[int32]func()),
		byPath: make(map[string]int32),
		done:   make(chan struct{}),
	}
	go w.run()
	return w, nil
}

// Add calls onChange (from the watcher goroutine; it must not block) after
// every change inside dir, until Remove(dir) or Close. Adding a directory
// again replaces its callback.
func (w *Watcher) Add(dir string, onChange func()) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("watching %s: %w", dir, os.ErrClosed)
	}
	wd, err := unix.InotifyAddWatch(w.fd, dir, watchMask)
	if err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	w.byWD[int32(wd)] = onChange
	w.byPath[dir] = int32(wd)
	return nil
}

// Remove stops watching dir. Removing an unknown or deleted directory is
// not an error.
func (w *Watcher) Remove(dir string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd, ok := w.byPath[dir]
	if !ok || w.closed {
		return
	}
	delete(w.byPath, dir)
	delete(w.byWD, wd)
	_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
}

// Close stops the watcher and waits for its goroutine to end.
func (w *Watcher) Close() error {
	var err error
	w.closeMu.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		err = w.file.Close()
		<-w.done
	})
	return err
}

func (w *Watcher) run() {
	defer close(w.done)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				w.log.Error("inotify read failed; directory changes are no longer reported", "err", err)
			}
			return
		}
		w.dispatch(buf[:n])
	}
}

func (w *Watcher) dispatch(b []byte) {
	var calls []func()
	// One call per directory and batch: a status update alone is several
	// events (create, write, rename) that callers handle with one re-read.
	called := make(map[int32]bool, 4)
	overflow := false
	w.mu.Lock()
	for off := 0; off+unix.SizeofInotifyEvent <= len(b); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[off]))
		off += unix.SizeofInotifyEvent + int(ev.Len)
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			overflow = true
			continue
		}
		if fn, ok := w.byWD[ev.Wd]; ok && !called[ev.Wd] {
			called[ev.Wd] = true
			calls = append(calls, fn)
		}
		if ev.Mask&unix.IN_IGNORED != 0 {
			// The kernel dropped the watch (directory deleted).
			delete(w.byWD, ev.Wd)
			for p, wd := range w.byPath {
				if wd == ev.Wd {
					delete(w.byPath, p)
				}
			}
		}
	}
	if overflow {
		// Events were lost: tell everyone to re-read.
		calls = calls[:0]
		for _, fn := range w.byWD {
			calls = append(calls, fn)
		}
	}
	w.mu.Unlock()
	for _, fn := range calls {
		fn()
	}
}
