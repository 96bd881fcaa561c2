package unit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/safedir"
	"golang.org/x/sys/unix"
)

// File names inside a unit directory (docs/protocol.md §13.3).
const (
	StatusFile = "status"
	LockFile   = "status.lock"
	StdinFile  = "stdin"
	StdoutFile = "stdout"
)

// ErrInvalidID is returned for IDs that fail ValidID.
var ErrInvalidID = errors.New("invalid unit ID")

// Store is the set of unit directories of one node: <datadir>/<node>/.
type Store struct {
	root string
}

// NewStore returns the store of nodeID under dataDir. Nothing is created
// here; Prepare creates and checks the node's directory.
// An empty dataDir means <os temp dir>/receptor. The data directory and the
// node's directory, where they exist, must pass safedir.Check: another user
// who created or can write them could read or forge units.
func NewStore(dataDir, nodeID string) (*Store, error) {
	if dataDir == "" {
		dataDir = filepath.Join(os.TempDir(), "receptor")
	}
	if nodeID == "" || nodeID == "." || nodeID == ".." || strings.ContainsAny(nodeID, "/\x00") {
		return nil, fmt.Errorf("opening unit store: node ID %q cannot name a directory", nodeID)
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("opening unit store in %q: %w", dataDir, err)
	}
	s := &Store{root: filepath.Join(abs, nodeID)}
	if err := s.checkDirs(safedir.CheckIfExists); err != nil {
		return nil, err
	}
	return s, nil
}

// checkDirs checks the data directory and the node's directory.
func (s *Store) checkDirs(check func(string) error) error {
	for _, d := range []string{filepath.Dir(s.root), s.root} {
		if err := check(d); err != nil {
			return fmt.Errorf("opening unit store (datadir and node directory): %w", err)
		}
	}
	return nil
}

// Prepare makes the store ready for units: it creates the node's directory
// (mode 0700) when missing, checks it and the data directory with
// safedir.Check, and proves the node's directory writable by creating and
// removing a probe file. The work agent calls it at start, so that a data
// directory it cannot use is reported then, naming the path, rather than at
// the first submit. The probe is a file, which IDs never lists.
func (s *Store) Prepare() error {
	notWritable := func(err error) error {
		return fmt.Errorf("unit store %s is not writable: %w", s.root, err)
	}
	if err := os.MkdirAll(s.root, 0o700); err != nil {
		return notWritable(err)
	}
	if err := s.checkDirs(safedir.Check); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.root, ".write-probe-*")
	if err != nil {
		return notWritable(err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("probe\n"))
	cerr := f.Close()
	rerr := os.Remove(name)
	for _, err := range []error{werr, cerr, rerr} {
		if err != nil {
			return notWritable(err)
		}
	}
	return nil
}

// Root is the node's directory holding all unit directories.
func (s *Store) Root() string { return s.root }

// Dir returns the directory of unit id, rejecting IDs that could escape the
// store.
func (s *Store) Dir(id string) (Dir, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("unit %q: %w", id, ErrInvalidID)
	}
	return Dir(filepath.Join(s.root, id)), nil
}

// Create allocates a fresh unit ID, creates its directory (mode 0700) and
// writes the initial status: Pending "Unit Created".
func (s *Store) Create(workType string, extra []byte) (string, Dir, error) {
	if err := os.MkdirAll(s.root, 0o700); err != nil {
		return "", "", fmt.Errorf("creating unit store %s: %w", s.root, err)
	}
	if err := s.checkDirs(safedir.Check); err != nil {
		return "", "", err
	}
	for range 100 {
		id, err := NewID()
		if err != nil {
			return "", "", err
		}
		d := Dir(filepath.Join(s.root, id))
		if err := os.Mkdir(string(d), 0o700); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return "", "", fmt.Errorf("creating unit directory %s: %w", d, err)
		}
		st := Status{State: Pending, Detail: "Unit Created", WorkType: workType, ExtraData: extra}
		if _, err := d.Update(func(cur *Status) { *cur = st }); err != nil {
			_ = os.RemoveAll(string(d))
			return "", "", err
		}
		return id, d, nil
	}
	return "", "", fmt.Errorf("creating unit directory in %s: no free unit ID", s.root)
}

// IDs lists the units on disk: every directory with a valid ID for a name.
// Directories without a status file are included; callers decide.
func (s *Store) IDs() ([]string, error) {
	ents, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scanning unit store %s: %w", s.root, err)
	}
	ids := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.IsDir() && ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Dir is one unit's directory.
type Dir string

// Path joins a file name of the unit directory.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// Exists reports whether the unit directory has a status file.
func (d Dir) Exists() bool {
	_, err := os.Stat(d.Path(StatusFile))
	return err == nil
}

// Updated is the modification time of the status file, which every status
// write rewrites (Update, Overwrite, upstream's writers): when the unit's
// status last changed. Zero when the file cannot be read.
func (d Dir) Updated() time.Time {
	fi, err := os.Stat(d.Path(StatusFile))
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// ReadStatus reads the status file under a shared flock on status.lock,
// so it never sees a write in progress (writers hold the exclusive lock).
// A unit without a lock file (nothing ever wrote it) is read unlocked.
func (d Dir) ReadStatus() (Status, error) {
	lock, err := os.Open(d.Path(LockFile))
	switch {
	case err == nil:
		defer lock.Close()
		if err := flock(lock, unix.LOCK_SH); err != nil {
			return Status{}, fmt.Errorf("locking status of %s: %w", d, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return Status{}, fmt.Errorf("locking status of %s: %w", d, err)
	}
	f, err := os.Open(d.Path(StatusFile))
	if err != nil {
		return Status{}, fmt.Errorf("reading status of %s: %w", d, err)
	}
	defer f.Close()
	b, err := readAll(f)
	if err != nil {
		return Status{}, fmt.Errorf("reading status of %s: %w", d, err)
	}
	st, err := ParseStatus(b)
	if err != nil {
		return Status{}, fmt.Errorf("status of %s: %w", d, err)
	}
	return st, nil
}

// readAll reads a status file from its start, bounded by MaxStatusSize
// (one byte more, so ParseStatus reports an oversized file).
func readAll(f *os.File) ([]byte, error) {
	return io.ReadAll(io.NewSectionReader(f, 0, MaxStatusSize+1))
}

// Update is a read-modify-write of the status file under an exclusive flock
// on status.lock, shared with every other writer (the worker, the command
// runner, upstream processes) and with readers, which take it shared. A
// missing or empty status file starts from the zero record.
//
// The file is rewritten in place, as upstream does (docs/protocol.md §13.3), rather than
// replaced by a renamed temporary file: a new inode per write is what made
// status updates expensive (ext4 inode allocation scans recently deleted
// inodes, and every rename deleted one). Readers are protected by the
// lock; against a writer dying mid-update the new content is written over
// the old one padded with spaces to at least its length, and only then is
// the file truncated, so the file always holds one whole record (plus
// whitespace JSON ignores).
func (d Dir) Update(fn func(*Status)) (Status, error) {
	lock, err := lockExclusive(d)
	if err != nil {
		return Status{}, err
	}
	defer lock.Close()
	f, err := os.OpenFile(d.Path(StatusFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return Status{}, fmt.Errorf("writing status of %s: %w", d, err)
	}
	defer f.Close()
	old, err := readAll(f)
	if err != nil {
		return Status{}, fmt.Errorf("reading status of %s: %w", d, err)
	}
	var cur Status
	if len(bytes.TrimSpace(old)) > 0 {
		if cur, err = ParseStatus(old); err != nil {
			return Status{}, fmt.Errorf("status of %s: %w", d, err)
		}
	}
	fn(&cur)
	b, err := cur.Marshal()
	if err != nil {
		return Status{}, err
	}
	if err := rewrite(f, b, len(old)); err != nil {
		return Status{}, fmt.Errorf("writing status of %s: %w", d, err)
	}
	return cur, nil
}

// Overwrite replaces the status record under the lock, whatever the file
// held (used to recover a unit whose status file is unreadable).
func (d Dir) Overwrite(st Status) error {
	lock, err := lockExclusive(d)
	if err != nil {
		return err
	}
	defer lock.Close()
	b, err := st.Marshal()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(d.Path(StatusFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("writing status of %s: %w", d, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("writing status of %s: %w", d, err)
	}
	if err := rewrite(f, b, int(min(fi.Size(), MaxStatusSize+1))); err != nil {
		return fmt.Errorf("writing status of %s: %w", d, err)
	}
	return nil
}

// rewrite replaces the content of f (oldLen bytes) with b, see Update.
func rewrite(f *os.File, b []byte, oldLen int) error {
	n := len(b)
	if oldLen > n {
		b = append(b, bytes.Repeat([]byte{' '}, oldLen-n)...)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	if oldLen > n {
		return f.Truncate(int64(n))
	}
	return nil
}

func lockExclusive(d Dir) (*os.File, error) {
	lock, err := os.OpenFile(d.Path(LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking status of %s: %w", d, err)
	}
	if err := flock(lock, unix.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("locking status of %s: %w", d, err)
	}
	return lock, nil
}

// StdoutSize is the current size of the stdout file (0 when absent).
func (d Dir) StdoutSize() int64 {
	fi, err := os.Stat(d.Path(StdoutFile))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Remove deletes the unit directory and everything in it.
func (d Dir) Remove() error {
	if err := os.RemoveAll(string(d)); err != nil {
		return fmt.Errorf("removing unit directory %s: %w", d, err)
	}
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}
