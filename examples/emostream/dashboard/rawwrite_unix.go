//go:build unix

package dashboard

import (
	"errors"
	"syscall"
)

// tryWriteSupported: this system has [tryWrite].
const tryWriteSupported = true

// tryWrite makes one write(2) of b on the connection's non-blocking
// socket and returns how much of b it took: less than len(b), possibly 0,
// when the socket's buffer is full. It never waits.
func tryWrite(raw syscall.RawConn, b []byte) (int, error) {
	var (
		n   int
		err error
	)
	cerr := raw.Write(func(fd uintptr) bool {
		for {
			n, err = syscall.Write(int(fd), b)
			if !errors.Is(err, syscall.EINTR) {
				return true
			}
		}
	})
	if cerr != nil {
		return 0, cerr
	}
	if errors.Is(err, syscall.EAGAIN) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}
