package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestValidEmoji(t *testing.T) {
	valid := []string{
		"🔥", "😀", "👍", "👍🏽", "❤️", "❤", "🇮🇳", "🇺🇸", "1️⃣", "#️⃣", "*⃣",
		"👩‍👩‍👧", "👨🏾‍💻", "🏳️‍🌈", "🧑🏻‍❤️‍💋‍🧑🏼", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "©️", "™", "🫠", "🏻",
	}
	for _, s := range valid {
		require.True(t, ValidEmoji(s), "%q (%U) should be an emoji", s, []rune(s))
	}
	invalid := []string{
		"", "a", "1", "#", "ab", "🔥🔥", "🇮", "🇮🇳🇺🇸", "🔥a", "a🔥", "🔥\u0301", "🔥\u200d",
		"\u200d🔥", "é", "中", " ", "🔥 ", "\ufffd", "\xff", ":fire:",
		strings.Repeat("🔥\u200d", 20) + "🔥", // one cluster, but far too long
	}
	for _, s := range invalid {
		require.False(t, ValidEmoji(s), "%q (%U) should not be an emoji", s, []rune(s))
	}
}

func TestParseRequest(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nowMS := now.UnixMilli()
	tests := []struct {
		name    string
		body    string
		want    Event
		field   string // the FieldError's field, when an error is expected
		wantErr error
		syntax  bool
	}{
		{name: "epoch ms", body: `{"user_id":"u1","emoji_type":"🔥","timestamp":1700000000123}`,
			want: Event{UserID: "u1", EmojiType: "🔥", Timestamp: 1700000000123}},
		{name: "rfc3339", body: `{"user_id":"u1","emoji_type":"👍🏽","timestamp":"2026-03-01T11:59:58.5+00:00"}`,
			want: Event{UserID: "u1", EmojiType: "👍🏽", Timestamp: nowMS - 1500}},
		{name: "rfc3339 offset", body: `{"user_id":"u1","emoji_type":"🇮🇳","timestamp":"2026-03-01T17:30:00+05:30"}`,
			want: Event{UserID: "u1", EmojiType: "🇮🇳", Timestamp: nowMS}},
		{name: "missing timestamp is now", body: `{"user_id":"u1","emoji_type":"❤️"}`,
			want: Event{UserID: "u1", EmojiType: "❤️", Timestamp: nowMS}},
		{name: "null timestamp is now", body: `{"user_id":"u1","emoji_type":"❤️","timestamp":null}`,
			want: Event{UserID: "u1", EmojiType: "❤️", Timestamp: nowMS}},
		{name: "exactly 5 minutes ahead", body: `{"user_id":"u","emoji_type":"🔥","timestamp":` + itoa(nowMS+300000) + `}`,
			want: Event{UserID: "u", EmojiType: "🔥", Timestamp: nowMS + 300000}},
		{name: "unknown fields ignored", body: ` {"user_id":"u","emoji_type":"🔥","timestamp":5,"extra":[1]} `,
			want: Event{UserID: "u", EmojiType: "🔥", Timestamp: 5}},
		{name: "escaped emoji", body: `{"user_id":"\u00e9","emoji_type":"\ud83d\udd25","timestamp":5}`,
			want: Event{UserID: "é", EmojiType: "🔥", Timestamp: 5}},
		{name: "128 byte user", body: `{"user_id":"` + strings.Repeat("x", 128) + `","emoji_type":"🔥","timestamp":5}`,
			want: Event{UserID: strings.Repeat("x", 128), EmojiType: "🔥", Timestamp: 5}},

		{name: "invalid json", body: `{"user_id":`, syntax: true},
		{name: "trailing garbage", body: `{"user_id":"u","emoji_type":"🔥"} x`, syntax: true},
		{name: "empty body", body: ``, syntax: true},
		{name: "array", body: `[]`, wantErr: ErrNotObject},
		{name: "string", body: `"🔥"`, wantErr: ErrNotObject},
		{name: "null", body: `null`, wantErr: ErrNotObject},
		{name: "missing user", body: `{"emoji_type":"🔥"}`, field: "user_id"},
		{name: "null user", body: `{"user_id":null,"emoji_type":"🔥"}`, field: "user_id"},
		{name: "numeric user", body: `{"user_id":7,"emoji_type":"🔥"}`, field: "user_id"},
		{name: "empty user", body: `{"user_id":"","emoji_type":"🔥"}`, field: "user_id"},
		{name: "long user", body: `{"user_id":"` + strings.Repeat("é", 65) + `","emoji_type":"🔥"}`, field: "user_id"},
		{name: "invalid utf8 user", body: "{\"user_id\":\"a\xffb\",\"emoji_type\":\"🔥\"}", field: "user_id"},
		{name: "lone surrogate user", body: `{"user_id":"a\ud800b","emoji_type":"🔥"}`, field: "user_id"},
		{name: "lone low surrogate user", body: `{"user_id":"\udc00","emoji_type":"🔥"}`, field: "user_id"},
		{name: "missing emoji", body: `{"user_id":"u"}`, field: "emoji_type"},
		{name: "two emojis", body: `{"user_id":"u","emoji_type":"🔥🔥"}`, field: "emoji_type"},
		{name: "text emoji", body: `{"user_id":"u","emoji_type":"fire"}`, field: "emoji_type"},
		{name: "emoji not string", body: `{"user_id":"u","emoji_type":["🔥"]}`, field: "emoji_type"},
		{name: "bad rfc3339", body: `{"user_id":"u","emoji_type":"🔥","timestamp":"yesterday"}`, field: "timestamp"},
		{name: "fractional ms", body: `{"user_id":"u","emoji_type":"🔥","timestamp":1.5}`, field: "timestamp"},
		{name: "exponent ms", body: `{"user_id":"u","emoji_type":"🔥","timestamp":1e12}`, field: "timestamp"},
		{name: "huge ms", body: `{"user_id":"u","emoji_type":"🔥","timestamp":99999999999999999999}`, field: "timestamp"},
		{name: "negative ms", body: `{"user_id":"u","emoji_type":"🔥","timestamp":-1}`, field: "timestamp"},
		{name: "bool timestamp", body: `{"user_id":"u","emoji_type":"🔥","timestamp":true}`, field: "timestamp"},
		{name: "too far ahead", body: `{"user_id":"u","emoji_type":"🔥","timestamp":` + itoa(nowMS+300001) + `}`, field: "timestamp"},
		{name: "too far ahead rfc3339", body: `{"user_id":"u","emoji_type":"🔥","timestamp":"2026-03-01T12:06:00Z"}`, field: "timestamp"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tc.body), now)
			switch {
			case tc.syntax:
				var se *json.SyntaxError
				require.ErrorAs(t, err, &se)
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
			case tc.field != "":
				var fe *FieldError
				require.ErrorAs(t, err, &fe)
				require.Equal(t, tc.field, fe.Field, "error: %v", err)
				require.True(t, strings.HasPrefix(err.Error(), tc.field+": "), err.Error())
			default:
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			}
		})
	}
}

func TestDecodeEvent(t *testing.T) {
	ev := Event{UserID: "u<1>", EmojiType: "👍🏽", Timestamp: 1700000000000}
	b, err := ev.Marshal()
	require.NoError(t, err)
	got, err := DecodeEvent(b)
	require.NoError(t, err)
	require.Equal(t, ev, got)

	tests := []struct {
		name, value, reason string
	}{
		{"empty", ``, ReasonEmpty},
		{"null", `null`, ReasonEmpty},
		{"garbage", `not json`, ReasonInvalidJSON},
		{"array", `[1]`, ReasonNotObject},
		{"no user", `{"emoji_type":"🔥","timestamp":1}`, ReasonInvalidUserID},
		{"empty user", `{"user_id":"","emoji_type":"🔥","timestamp":1}`, ReasonInvalidUserID},
		{"bad emoji", `{"user_id":"u","emoji_type":"x","timestamp":1}`, ReasonInvalidEmoji},
		{"no emoji", `{"user_id":"u","timestamp":1}`, ReasonInvalidEmoji},
		{"no timestamp", `{"user_id":"u","emoji_type":"🔥"}`, ReasonInvalidTimestamp},
		{"string timestamp", `{"user_id":"u","emoji_type":"🔥","timestamp":"2026-01-01T00:00:00Z"}`, ReasonInvalidTimestamp},
		{"negative timestamp", `{"user_id":"u","emoji_type":"🔥","timestamp":-5}`, ReasonInvalidTimestamp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(tc.value))
			var de *DecodeError
			require.ErrorAs(t, err, &de)
			require.Equal(t, tc.reason, de.Reason)
		})
	}
}

func TestResult(t *testing.T) {
	r := NewResult(4000, 2*time.Second, "🔥", 2500, 1000)
	require.Equal(t, Result{WindowStart: 4000, WindowEnd: 6000, EmojiType: "🔥", Count: 2500, Bursts: 3}, r)
	b, err := r.Marshal()
	require.NoError(t, err)
	require.JSONEq(t, `{"window_start":4000,"window_end":6000,"emoji_type":"🔥","count":2500,"bursts":3}`, string(b))
	got, err := DecodeResult(b)
	require.NoError(t, err)
	require.Equal(t, r, got)

	for _, bad := range []string{``, `{}`, `[1]`, `{"window_start":2,"window_end":2,"emoji_type":"🔥","count":1,"bursts":1}`,
		`{"window_start":0,"window_end":2,"emoji_type":"x","count":1,"bursts":1}`,
		`{"window_start":0,"window_end":2,"emoji_type":"🔥","count":0,"bursts":0}`} {
		_, err := DecodeResult([]byte(bad))
		var de *DecodeError
		require.ErrorAs(t, err, &de, bad)
	}
}

func TestBursts(t *testing.T) {
	tests := []struct{ count, scale, want int64 }{
		{0, 1000, 0}, {1, 1000, 1}, {999, 1000, 1}, {1000, 1000, 1}, {1001, 1000, 2},
		{7, 1, 7}, {7, 0, 7}, {1<<63 - 1, 2, 1 << 62},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, Bursts(tc.count, tc.scale), "Bursts(%d, %d)", tc.count, tc.scale)
	}
}

func TestSerdes(t *testing.T) {
	_, err := EventSerde().Deserialize([]byte(`{"user_id":"u","emoji_type":"x","timestamp":1}`))
	var de *DecodeError
	require.True(t, errors.As(err, &de))
	require.Equal(t, ReasonInvalidEmoji, de.Reason)
	b, err := ResultSerde().Serialize(NewResult(0, time.Second, "🔥", 1, 1))
	require.NoError(t, err)
	r, err := ResultSerde().Deserialize(b)
	require.NoError(t, err)
	require.Equal(t, int64(1), r.Count)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
