package window

import "errors"

var (
	// ErrInvalidWindows reports a window definition that cannot work.
	ErrInvalidWindows = errors.New("window: invalid windows")
	// ErrCorruptKey reports a windowed key that does not decode.
	ErrCorruptKey = errors.New("window: corrupt windowed key")
	// ErrCorruptValue reports a stored window value that does not decode.
	ErrCorruptValue = errors.New("window: corrupt window value")
	// errLate marks an update refused because its window is closed.
	errLate = errors.New("window: late record")
)
