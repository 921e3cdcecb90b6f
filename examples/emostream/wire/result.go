package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Result is one window's count for one emoji, the value of a topic2 record
// keyed by EmojiType. Windows are tumbling and aligned to the epoch:
// WindowStart = floor(ts / size) * size and WindowEnd = WindowStart + size,
// both in epoch milliseconds, the end exclusive.
type Result struct {
	WindowStart int64  `json:"window_start"`
	WindowEnd   int64  `json:"window_end"`
	EmojiType   string `json:"emoji_type"`
	Count       int64  `json:"count"`
	Bursts      int64  `json:"bursts"`
}

// NewResult builds the result of the window [start, start+size) holding
// count emojis of emojiType, with bursts computed by [Bursts].
func NewResult(start int64, size time.Duration, emojiType string, count, scale int64) Result {
	return Result{
		WindowStart: start,
		WindowEnd:   start + size.Milliseconds(),
		EmojiType:   emojiType,
		Count:       count,
		Bursts:      Bursts(count, scale),
	}
}

// Bursts returns ceil(count / scale): how many "bursts" a window of count
// emojis shows as on the dashboard. A scale below 1 counts as 1.
func Bursts(count, scale int64) int64 {
	if count <= 0 {
		return 0
	}
	if scale < 1 {
		scale = 1
	}
	b := count / scale
	if count%scale != 0 {
		b++
	}
	return b
}

// Marshal encodes the result as the topic2 record value: the bytes
// encoding/json writes, without its reflection when the emoji needs no
// escaping (a result is written per window and emoji, as often as an event
// is read when most windows hold one record).
func (r Result) Marshal() ([]byte, error) {
	if plainJSON(r.EmojiType) {
		b := make([]byte, 0, 96+len(r.EmojiType))
		b = append(b, `{"window_start":`...)
		b = strconv.AppendInt(b, r.WindowStart, 10)
		b = append(b, `,"window_end":`...)
		b = strconv.AppendInt(b, r.WindowEnd, 10)
		b = append(b, `,"emoji_type":"`...)
		b = append(b, r.EmojiType...)
		b = append(b, `","count":`...)
		b = strconv.AppendInt(b, r.Count, 10)
		b = append(b, `,"bursts":`...)
		b = strconv.AppendInt(b, r.Bursts, 10)
		return append(b, '}'), nil
	}
	return json.Marshal(r)
}

// Reason of a topic2 value rejected by [DecodeResult].
const ReasonInvalidResult = "invalid result"

// DecodeResult reads a topic2 record value and checks that it describes a
// real window: a JSON object with window_end after window_start, a valid
// emoji_type, a positive count and non-negative bursts. A value that does
// not is a *[DecodeError].
func DecodeResult(b []byte) (Result, error) {
	b = trimJSONSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		return Result{}, &DecodeError{Reason: ReasonEmpty}
	case !json.Valid(b):
		var v any
		return Result{}, &DecodeError{Reason: ReasonInvalidJSON, Err: json.Unmarshal(b, &v)}
	case b[0] != '{':
		return Result{}, &DecodeError{Reason: ReasonNotObject}
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return Result{}, &DecodeError{Reason: ReasonInvalidResult, Err: err}
	}
	var problem error
	switch {
	case r.WindowEnd <= r.WindowStart:
		problem = fmt.Errorf("window_end %d is not after window_start %d", r.WindowEnd, r.WindowStart)
	case !ValidEmoji(r.EmojiType):
		problem = fmt.Errorf("emoji_type %q is not one emoji", r.EmojiType)
	case r.Count <= 0:
		problem = fmt.Errorf("count %d is not positive", r.Count)
	case r.Bursts < 0:
		problem = errors.New("bursts is negative")
	}
	if problem != nil {
		return Result{}, &DecodeError{Reason: ReasonInvalidResult, Err: problem}
	}
	return r, nil
}
