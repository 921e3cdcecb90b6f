package wire

import (
	"errors"
	"fmt"
)

// ErrNotObject is returned by [ParseRequest] when the JSON value is valid but
// is not an object.
var ErrNotObject = errors.New("wire: emoji must be a JSON object")

// FieldError reports an emoji object whose field breaks the contract. Its
// message names the field, so the API can hand it to the client as is.
type FieldError struct {
	// Field is the JSON name of the offending field: "user_id",
	// "emoji_type" or "timestamp".
	Field string
	// Reason says what is wrong, in words a client can act on.
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Reason) }

// DecodeError reports an input or output record that cannot be decoded.
// Reason is a short, stable text meant for the "error" header of a
// dead-letter record and for metric labels; Err, when set, is the underlying
// cause.
type DecodeError struct {
	Reason string
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("wire: %s: %v", e.Reason, e.Err)
	}
	return "wire: " + e.Reason
}

// Unwrap returns the underlying cause, if any.
func (e *DecodeError) Unwrap() error { return e.Err }
