//go:build !unix

package dashboard

import (
	"errors"
	"syscall"
)

// tryWriteSupported: this system lacks [tryWrite], so every event stream
// is served by a goroutine of its own.
const tryWriteSupported = false

func tryWrite(syscall.RawConn, []byte) (int, error) {
	return 0, errors.ErrUnsupported
}
