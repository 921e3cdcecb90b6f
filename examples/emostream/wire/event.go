package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Event is one emoji as it travels on the input topic (topic1), keyed by
// EmojiType.
type Event struct {
	UserID    string `json:"user_id"`
	EmojiType string `json:"emoji_type"`
	// Timestamp is the event time in Unix epoch milliseconds; it is also the
	// Kafka record's timestamp.
	Timestamp int64 `json:"timestamp"`
}

// Time returns the event time.
func (e Event) Time() time.Time { return time.UnixMilli(e.Timestamp) }

// Marshal encodes the event as the topic1 record value.
func (e Event) Marshal() ([]byte, error) {
	if b, ok := appendEventFast(make([]byte, 0, 48+len(e.UserID)+len(e.EmojiType)), e); ok {
		return b, nil
	}
	return json.Marshal(e)
}

// Reasons a topic1 value is rejected by [DecodeEvent]; they are the
// [DecodeError.Reason] values, stable for DLQ headers and metric labels.
const (
	ReasonEmpty            = "empty value"
	ReasonInvalidJSON      = "invalid json"
	ReasonNotObject        = "not a json object"
	ReasonInvalidUserID    = "invalid user_id"
	ReasonInvalidEmoji     = "invalid emoji_type"
	ReasonInvalidTimestamp = "invalid timestamp"
)

// DecodeEvent reads a topic1 record value. It is strict: the value must be a
// JSON object with a valid user_id and emoji_type (the rules of
// [ParseRequest]) and a non-negative integer timestamp in epoch
// milliseconds. Anything else is a *[DecodeError] whose Reason is one of the
// Reason constants, so a dead-letter record says why it was rejected.
func DecodeEvent(b []byte) (Event, error) {
	if ev, ok := decodeEventFast(b); ok {
		return ev, nil
	}
	return decodeEventSlow(b)
}

// decodeEventSlow is DecodeEvent on encoding/json, for every input.
func decodeEventSlow(b []byte) (Event, error) {
	b = trimJSONSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		return Event{}, &DecodeError{Reason: ReasonEmpty}
	case !json.Valid(b):
		var v any
		return Event{}, &DecodeError{Reason: ReasonInvalidJSON, Err: json.Unmarshal(b, &v)}
	case b[0] != '{':
		return Event{}, &DecodeError{Reason: ReasonNotObject}
	}
	var raw rawRequest
	if err := json.Unmarshal(b, &raw); err != nil {
		return Event{}, &DecodeError{Reason: ReasonInvalidJSON, Err: err}
	}
	var ev Event
	var reason string
	switch {
	case isMissing(raw.UserID):
		reason = "is required"
	default:
		if ev.UserID, reason = jsonString(raw.UserID); reason == "" && (ev.UserID == "" || len(ev.UserID) > MaxUserIDBytes) {
			reason = fmt.Sprintf("must be 1 to %d bytes", MaxUserIDBytes)
		}
	}
	if reason != "" {
		return Event{}, &DecodeError{Reason: ReasonInvalidUserID, Err: errors.New("user_id " + reason)}
	}
	switch {
	case isMissing(raw.EmojiType):
		reason = "is required"
	default:
		if ev.EmojiType, reason = jsonString(raw.EmojiType); reason == "" {
			reason = emojiProblem(ev.EmojiType)
		}
	}
	if reason != "" {
		return Event{}, &DecodeError{Reason: ReasonInvalidEmoji, Err: errors.New("emoji_type " + reason)}
	}
	ts, err := strconv.ParseInt(string(raw.Timestamp), 10, 64)
	if err != nil || ts < 0 {
		return Event{}, &DecodeError{Reason: ReasonInvalidTimestamp,
			Err: fmt.Errorf("timestamp %q is not non-negative integer epoch milliseconds", raw.Timestamp)}
	}
	ev.Timestamp = ts
	return ev, nil
}
