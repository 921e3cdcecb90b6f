package wire

import (
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// The aggregator decodes every topic1 record, so DecodeEvent first tries
// decodeEventFast, a reflection-free reader of the one shape the ingest API
// writes. Anything else (whitespace, escapes, other or repeated keys, a
// non-integer timestamp, an invalid field) makes it give up, and the general
// encoding/json path decides, with its exact error. For every input the fast
// path accepts, both paths return the same Event (FuzzDecodeEventFast).

// decodeEventFast reads {"user_id":"…","emoji_type":"…","timestamp":N}: the
// three keys once each in any order, no whitespace, strings without escapes
// or control characters, N a non-negative integer of at most 18 digits. ok
// is false for anything else.
func decodeEventFast(b []byte) (ev Event, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return Event{}, false
	}
	var seen uint8
	i := 1
	for {
		key, j, ok := plainString(b, i)
		if !ok || j >= len(b) || b[j] != ':' {
			return Event{}, false
		}
		j++
		switch string(key) {
		case "user_id":
			s, k, ok := plainString(b, j)
			if !ok || seen&1 != 0 || len(s) == 0 || len(s) > MaxUserIDBytes || !utf8.Valid(s) {
				return Event{}, false
			}
			ev.UserID, j, seen = string(s), k, seen|1
		case "emoji_type":
			s, k, ok := plainString(b, j)
			if !ok || seen&2 != 0 {
				return Event{}, false
			}
			if ev.EmojiType, ok = knownEmoji(s); !ok {
				return Event{}, false
			}
			j, seen = k, seen|2
		case "timestamp":
			ts, k, ok := plainUint(b, j)
			if !ok || seen&4 != 0 {
				return Event{}, false
			}
			ev.Timestamp, j, seen = ts, k, seen|4
		default:
			return Event{}, false
		}
		switch {
		case j < len(b)-1 && b[j] == ',':
			i = j + 1
		case j == len(b)-1 && seen == 7:
			return ev, true
		default:
			return Event{}, false
		}
	}
}

// plainString reads the JSON string starting at b[i] when it has no escapes
// and no control characters, returning its content and the index after the
// closing quote.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// plainUint reads a JSON non-negative integer of 1 to 18 digits (no sign,
// fraction or exponent, no leading zero) starting at b[i].
func plainUint(b []byte, i int) (int64, int, bool) {
	var n int64
	j := i
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + int64(b[j]-'0')
	}
	digits := j - i
	if digits == 0 || digits > 18 || (b[i] == '0' && digits > 1) {
		return 0, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, 0, false
	}
	return n, j, true
}

// emojiCacheMax bounds the emoji cache: real traffic uses a few hundred
// emojis, and an attacker inventing new ZWJ sequences only falls back to the
// uncached check once the cache is full.
const emojiCacheMax = 4096

var (
	emojiCache   atomic.Pointer[map[string]string] // immutable; replaced on add
	emojiCacheMu sync.Mutex                        // serialises adds
)

// knownEmoji returns s as a string when it is one valid emoji, checking
// each distinct emoji once and handing out one shared string per emoji, so
// decoding allocates nothing for it.
func knownEmoji(s []byte) (string, bool) {
	if m := emojiCache.Load(); m != nil {
		if e, ok := (*m)[string(s)]; ok {
			return e, true
		}
	}
	e := string(s)
	if emojiProblem(e) != "" {
		return "", false
	}
	emojiCacheMu.Lock()
	defer emojiCacheMu.Unlock()
	old := emojiCache.Load()
	if old != nil && len(*old) >= emojiCacheMax {
		return e, true
	}
	m := make(map[string]string, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[e] = e
	emojiCache.Store(&m)
	return e, true
}

func lenOf(m *map[string]string) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// appendEventFast appends e as encoding/json would write it, when neither
// string needs escaping (the common case); ok is false otherwise and Marshal
// falls back to encoding/json.
func appendEventFast(b []byte, e Event) ([]byte, bool) {
	if !plainJSON(e.UserID) || !plainJSON(e.EmojiType) {
		return nil, false
	}
	b = append(b, `{"user_id":"`...)
	b = append(b, e.UserID...)
	b = append(b, `","emoji_type":"`...)
	b = append(b, e.EmojiType...)
	b = append(b, `","timestamp":`...)
	b = strconv.AppendInt(b, e.Timestamp, 10)
	return append(b, '}'), true
}

// plainJSON reports whether encoding/json writes s verbatim between quotes:
// valid UTF-8 without control characters, quotes, backslashes, the HTML
// characters it escapes (<, >, &) or U+2028/U+2029.
func plainJSON(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += n
	}
	return true
}
