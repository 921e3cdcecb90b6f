package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Limits of an emoji object, from the contract.
const (
	// MaxUserIDBytes is the longest accepted user_id, in bytes.
	MaxUserIDBytes = 128
	// MaxFutureSkew is how far ahead of the server's clock a timestamp may
	// be. Clients' clocks drift; a timestamp further ahead would open a
	// window that closes long after everyone else's.
	MaxFutureSkew = 5 * time.Minute
)

// Request is the emoji object a client sends to POST /api. The server also
// accepts the timestamp as an RFC 3339 string; Go clients use epoch
// milliseconds, the form the server stores.
type Request struct {
	UserID    string `json:"user_id"`
	EmojiType string `json:"emoji_type"`
	// Timestamp is Unix epoch milliseconds; nil leaves it out, so the server
	// stamps its receive time.
	Timestamp *int64 `json:"timestamp,omitempty"`
}

// rawRequest holds the fields undecoded, so each can be checked for its
// JSON type before it is read.
type rawRequest struct {
	UserID    json.RawMessage `json:"user_id"`
	EmojiType json.RawMessage `json:"emoji_type"`
	Timestamp json.RawMessage `json:"timestamp"`
}

// ParseRequest validates one JSON emoji object and returns the event to
// write to the input topic. now is the server's receive time: it fills a
// missing timestamp and bounds future ones.
//
// Invalid JSON is reported as the *json.SyntaxError of encoding/json; a JSON
// value that is not an object as [ErrNotObject]; a bad field as a
// *[FieldError]. Unknown fields are ignored, so clients may send more than
// the contract asks for.
func ParseRequest(b []byte, now time.Time) (Event, error) {
	b = trimJSONSpace(b)
	if !json.Valid(b) {
		var v any
		return Event{}, json.Unmarshal(b, &v) // the decoder's error says where
	}
	if len(b) == 0 || b[0] != '{' {
		return Event{}, ErrNotObject
	}
	var raw rawRequest
	if err := json.Unmarshal(b, &raw); err != nil {
		return Event{}, fmt.Errorf("wire: %w", err)
	}
	return raw.event(now)
}

func (raw rawRequest) event(now time.Time) (Event, error) {
	var ev Event
	var reason string

	if isMissing(raw.UserID) {
		return Event{}, &FieldError{Field: "user_id", Reason: "is required"}
	}
	if ev.UserID, reason = jsonString(raw.UserID); reason != "" {
		return Event{}, &FieldError{Field: "user_id", Reason: reason}
	}
	if n := len(ev.UserID); n == 0 || n > MaxUserIDBytes {
		return Event{}, &FieldError{Field: "user_id", Reason: fmt.Sprintf("must be 1 to %d bytes, got %d", MaxUserIDBytes, n)}
	}

	if isMissing(raw.EmojiType) {
		return Event{}, &FieldError{Field: "emoji_type", Reason: "is required"}
	}
	if ev.EmojiType, reason = jsonString(raw.EmojiType); reason != "" {
		return Event{}, &FieldError{Field: "emoji_type", Reason: reason}
	}
	if reason = emojiProblem(ev.EmojiType); reason != "" {
		return Event{}, &FieldError{Field: "emoji_type", Reason: reason}
	}

	ts, err := requestTimestamp(raw.Timestamp, now)
	if err != nil {
		return Event{}, err
	}
	ev.Timestamp = ts
	return ev, nil
}

// requestTimestamp reads the optional timestamp field as epoch milliseconds.
func requestTimestamp(b json.RawMessage, now time.Time) (int64, error) {
	bad := func(reason string) error { return &FieldError{Field: "timestamp", Reason: reason} }
	var ms int64
	switch {
	case isMissing(b):
		return now.UnixMilli(), nil
	case b[0] == '"':
		s, reason := jsonString(b)
		if reason != "" {
			return 0, bad(reason)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return 0, bad(fmt.Sprintf("%q is not an RFC 3339 time", s))
		}
		ms = t.UnixMilli()
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return 0, bad(fmt.Sprintf("%s is not an integer number of epoch milliseconds", b))
		}
		ms = n
	default:
		return 0, bad("must be an RFC 3339 string or integer epoch milliseconds")
	}
	if ms < 0 {
		// Kafka record timestamps cannot be negative.
		return 0, bad("is before the Unix epoch")
	}
	if limit := now.Add(MaxFutureSkew).UnixMilli(); ms > limit {
		return 0, bad(fmt.Sprintf("is more than %v in the future", MaxFutureSkew))
	}
	return ms, nil
}

// isMissing treats an absent field and an explicit null alike.
func isMissing(b json.RawMessage) bool { return len(b) == 0 || string(b) == "null" }
