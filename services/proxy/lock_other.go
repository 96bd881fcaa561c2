//go:build !unix

package proxy

import (
	"errors"
	"fmt"
)

// lockFile is unsupported where upstream does not register unix-socket
// proxies.
func lockFile(path string) (func(), error) {
	return nil, fmt.Errorf("lock %s: %w", path, errors.ErrUnsupported)
}
