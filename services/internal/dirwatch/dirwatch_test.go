package dirwatch

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/receptor-mesh/receptor/services/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReportsChanges(t *testing.T) {
	w, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := t.TempDir()
	ch := make(chan struct{}, 100)
	if err := w.Add(dir, func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no change reported after %s", what)
		}
		for len(ch) > 0 {
			<-ch
		}
	}
	f := filepath.Join(dir, "stdout")
	if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	wait("create")
	if err := os.WriteFile(filepath.Join(dir, "tmp"), []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	wait("write tmp")
	if err := os.Rename(filepath.Join(dir, "tmp"), filepath.Join(dir, "status")); err != nil {
		t.Fatal(err)
	}
	wait("rename")

	w.Remove(dir)
	w.Remove(dir) // idempotent
	for len(ch) > 0 {
		<-ch
	}
	if err := os.WriteFile(f, []byte("z"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A second, still-watched directory proves the watcher is alive, so the
	// silence of the removed one is meaningful.
	other := t.TempDir()
	seen := make(chan struct{}, 1)
	if err := w.Add(other, func() {
		select {
		case seen <- struct{}{}:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(other, "a"), nil, 0o600)
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported for second directory")
	}
	if len(ch) != 0 {
		t.Fatal("change reported for a removed directory")
	}
}

func TestLockFileOpenCloseIsQuiet(t *testing.T) {
	w, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := t.TempDir()
	lock := filepath.Join(dir, "status.lock")
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout := filepath.Join(dir, "stdout")
	var calls, early atomic.Int64
	if err := w.Add(dir, func() {
		// A call before stdout exists can only come from the lock opens.
		if _, err := os.Stat(stdout); err != nil {
			early.Add(1)
		}
		calls.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	// Opening the existing lock file for writing and closing it, as every
	// status update does, is no change.
	for range 10 {
		f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// A write after them is reported; once it is, the opens had their
	// chance to be reported too (events arrive in order).
	if err := os.WriteFile(stdout, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the write reported", func() error {
		if calls.Load() == 0 {
			return errors.New("no change call yet")
		}
		return nil
	})
	if n := early.Load(); n != 0 {
		t.Fatalf("%d change calls for opening and closing the lock file", n)
	}
}

func TestAddMissingDirFails(t *testing.T) {
	w, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(filepath.Join(t.TempDir(), "nope"), func() {}); err == nil {
		t.Fatal("Add of a missing directory succeeded")
	}
}

func TestCloseTwice(t *testing.T) {
	w, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
}
