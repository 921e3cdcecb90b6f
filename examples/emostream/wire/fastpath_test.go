package wire

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeEventFastAcceptsCanonical(t *testing.T) {
	for _, e := range []Event{
		{UserID: "u", EmojiType: "🔥", Timestamp: 0},
		{UserID: "user-42", EmojiType: "👍🏽", Timestamp: 1764201600000},
		{UserID: "ünïcödé", EmojiType: "🇮🇳", Timestamp: 999999999999999999},
		{UserID: "x", EmojiType: "👩‍👩‍👧", Timestamp: 7},
	} {
		b, err := e.Marshal()
		require.NoError(t, err)
		got, ok := decodeEventFast(b)
		require.True(t, ok, "%s", b)
		require.Equal(t, e, got)
	}
}

func TestDecodeEventFastDefers(t *testing.T) {
	for _, in := range []string{
		` {"user_id":"u","emoji_type":"🔥","timestamp":1}`,
		`{"user_id":"u", "emoji_type":"🔥","timestamp":1}`,
		`{"user_id":"u\n","emoji_type":"🔥","timestamp":1}`,
		`{"user_id":"\u0041","emoji_type":"🔥","timestamp":1}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":1,"x":1}`,
		`{"user_id":"u","user_id":"v","emoji_type":"🔥","timestamp":1}`,
		`{"user_id":"u","emoji_type":"🔥"}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":01}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":1.0}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":1e3}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":-1}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":"1"}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":1234567890123456789}`,
		`{"user_id":"","emoji_type":"🔥","timestamp":1}`,
		`{"user_id":"u","emoji_type":"a","timestamp":1}`,
		`{"user_id":"u","emoji_type":"🔥🔥","timestamp":1}`,
		"{\"user_id\":\"\xff\",\"emoji_type\":\"🔥\",\"timestamp\":1}",
		`{"USER_ID":"u","emoji_type":"🔥","timestamp":1}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":1,}`,
		`{}`,
		`{`,
	} {
		_, ok := decodeEventFast([]byte(in))
		require.False(t, ok, "%s", in)
	}
}

// FuzzDecodeEventFast: whatever the fast path accepts, the general decoder
// accepts with the same result; the fast path never panics.
func FuzzDecodeEventFast(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"u","emoji_type":"🔥","timestamp":1764201600000}`,
		`{"timestamp":0,"emoji_type":"❤️","user_id":"ü"}`,
		`{"emoji_type":"🇮🇳","user_id":"x","timestamp":12}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":01}`,
		`{"user_id":"u","emoji_type":"🔥","timestamp":1,"user_id":"v"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeEventFast(b)
		if !ok {
			return
		}
		slow, err := decodeEventSlow(b)
		if err != nil {
			t.Fatalf("fast path accepted %q, general decoder: %v", b, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast %+v, general %+v", b, fast, slow)
		}
	})
}

// FuzzMarshalEventFast: Event.Marshal writes exactly what encoding/json
// writes, whichever path it takes.
func FuzzMarshalEventFast(f *testing.F) {
	f.Add("u", "🔥", int64(1764201600000))
	f.Add("a<b>&\"c\\", "👍🏽", int64(-1))
	f.Add("\u2028\xff", "❤️", int64(0))
	f.Fuzz(func(t *testing.T, user, emoji string, ts int64) {
		e := Event{UserID: user, EmojiType: emoji, Timestamp: ts}
		got, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Marshal(%+v) = %s, encoding/json writes %s", e, got, want)
		}
	})
}

// FuzzMarshalResult: Result.Marshal writes exactly what encoding/json
// writes, whichever path it takes.
func FuzzMarshalResult(f *testing.F) {
	f.Add(int64(1764201600000), int64(1764201602000), "🔥", int64(3), int64(1))
	f.Add(int64(-2000), int64(0), "a<b>&\"c\\", int64(-1), int64(0))
	f.Add(int64(0), int64(1), "\u2028\xff❤️", int64(1<<62), int64(-1<<63))
	f.Fuzz(func(t *testing.T, start, end int64, emoji string, count, bursts int64) {
		r := Result{WindowStart: start, WindowEnd: end, EmojiType: emoji, Count: count, Bursts: bursts}
		got, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Marshal(%+v) = %s, encoding/json writes %s", r, got, want)
		}
	})
}
