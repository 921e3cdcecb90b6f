package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// The fuzz targets of this file check the two decoders the emoji pipeline
// trusts: ParseRequest (a POST /api object) and DecodeEvent (a topic1
// value), plus DecodeResult (a topic2 value). Each is compared with an
// oracle written independently of the code under test, so a target fails on
// a wrong answer, not only on a panic. The seed corpus is under
// testdata/fuzz/<FuzzName>/; run one with
//
//	go test -run '^$' -fuzz '^FuzzParseRequest$' -fuzztime 5m -parallel=1 ./examples/emostream/wire/

// fuzzNow is the server clock of the request fuzzers. It is fixed so that a
// failing input replays exactly.
var fuzzNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// farNow is a server clock late enough that no integer timestamp is in its
// future: now + MaxFutureSkew is math.MaxInt64 milliseconds.
var farNow = time.UnixMilli(math.MaxInt64 - MaxFutureSkew.Milliseconds())

// checkEvent fails unless ev satisfies the contract's rules for an accepted
// emoji, with a timestamp at most limit.
func checkEvent(t *testing.T, ev Event, limit int64) {
	t.Helper()
	if n := len(ev.UserID); n < 1 || n > MaxUserIDBytes || !utf8.ValidString(ev.UserID) {
		t.Fatalf("accepted user_id %q (%d bytes)", ev.UserID, n)
	}
	if !ValidEmoji(ev.EmojiType) || uniseg.GraphemeClusterCount(ev.EmojiType) != 1 {
		t.Fatalf("accepted emoji_type %q (%U)", ev.EmojiType, []rune(ev.EmojiType))
	}
	if ev.Timestamp < 0 || ev.Timestamp > limit {
		t.Fatalf("accepted timestamp %d outside [0, %d]", ev.Timestamp, limit)
	}
}

// strictString decodes the JSON string literal b (RFC 8259 section 7),
// refusing invalid UTF-8 and escaped surrogates that are not a high-low
// pair. It is the test's own decoder: encoding/json would replace both with
// U+FFFD instead of failing.
func strictString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	s := b[1 : len(b)-1]
	var out strings.Builder
	hex := func(at int) (rune, bool) {
		if at+4 > len(s) {
			return 0, false
		}
		var r rune
		for _, c := range s[at : at+4] {
			switch {
			case c >= '0' && c <= '9':
				r = r<<4 | rune(c-'0')
			case c >= 'a' && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case c >= 'A' && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c < 0x20:
			return "", false
		case c == '\\':
			if i+1 >= len(s) {
				return "", false
			}
			if d, ok := jsonEscapes[s[i+1]]; ok {
				out.WriteByte(d)
				i += 2
				continue
			}
			if s[i+1] != 'u' {
				return "", false
			}
			r, ok := hex(i + 2)
			if !ok {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r >= 0xDC00 || i+1 >= len(s) || s[i] != '\\' || s[i+1] != 'u' {
					return "", false
				}
				lo, ok := hex(i + 2)
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return "", false
				}
				r = utf16.DecodeRune(r, lo)
				i += 6
			}
			out.WriteRune(r)
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			out.Write(s[i : i+size])
			i += size
		}
	}
	return out.String(), true
}

// jsonEscapes maps the two-character escapes of JSON to their byte.
var jsonEscapes = map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// appendJSONString writes s as a JSON string literal the way a careless
// client might: bytes that are not UTF-8 go out raw; with escapeAll, every
// non-ASCII character is a \u escape (astral ones as surrogate pairs).
func appendJSONString(b []byte, s string, escapeAll bool) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[i])
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r >= 0x10000 && escapeAll:
			hi, lo := utf16.EncodeRune(r)
			b = fmt.Appendf(b, `\u%04x\u%04X`, hi, lo)
		case r < 0x20 || (r >= 0x7f && escapeAll):
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// isIntegerLiteral reports whether the JSON value b is a number without a
// fraction or exponent.
func isIntegerLiteral(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// requestOutcome is what the oracle expects of ParseRequest.
type requestOutcome struct {
	syntax    bool   // a *json.SyntaxError
	notObject bool   // ErrNotObject
	field     string // a *FieldError naming this field
	ev        Event  // the event, when none of the above
}

// wantRequest is the oracle of ParseRequest: the contract's rules applied
// to the member values encoding/json picks for the three fields (it matches
// names case-insensitively and the last duplicate wins; the oracle uses the
// same choice so that it agrees with clients' encoders).
func wantRequest(b []byte, now time.Time) requestOutcome {
	if !json.Valid(b) {
		return requestOutcome{syntax: true}
	}
	if bytes.TrimLeft(b, " \t\r\n")[0] != '{' {
		return requestOutcome{notObject: true}
	}
	var raw rawRequest
	if err := json.Unmarshal(b, &raw); err != nil {
		panic(err) // RawMessage fields take any value
	}
	present := func(m json.RawMessage) bool { return len(m) > 0 && string(m) != "null" }

	var ev Event
	var ok bool
	if ev.UserID, ok = strictString(raw.UserID); !present(raw.UserID) || !ok || len(ev.UserID) == 0 || len(ev.UserID) > 128 {
		return requestOutcome{field: "user_id"}
	}
	if ev.EmojiType, ok = strictString(raw.EmojiType); !present(raw.EmojiType) || !ok || !ValidEmoji(ev.EmojiType) {
		return requestOutcome{field: "emoji_type"}
	}
	ts := raw.Timestamp
	switch {
	case !present(ts):
		ev.Timestamp = now.UnixMilli()
		return requestOutcome{ev: ev}
	case ts[0] == '"':
		s, ok := strictString(ts)
		if !ok {
			return requestOutcome{field: "timestamp"}
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return requestOutcome{field: "timestamp"}
		}
		ev.Timestamp = t.UnixMilli()
	case isIntegerLiteral(ts):
		n, _ := new(big.Int).SetString(string(ts), 10)
		if !n.IsInt64() {
			return requestOutcome{field: "timestamp"}
		}
		ev.Timestamp = n.Int64()
	default:
		return requestOutcome{field: "timestamp"}
	}
	if ev.Timestamp < 0 || ev.Timestamp > now.Add(5*time.Minute).UnixMilli() {
		return requestOutcome{field: "timestamp"}
	}
	return requestOutcome{ev: ev}
}

// checkRequest compares ParseRequest(b, now) with the oracle and, for an
// accepted object, checks the round trips every accepted emoji takes.
func checkRequest(t *testing.T, b []byte, now time.Time) (Event, error) {
	t.Helper()
	ev, err := ParseRequest(b, now)
	want := wantRequest(b, now)
	var se *json.SyntaxError
	var fe *FieldError
	switch {
	case want.syntax:
		if !errors.As(err, &se) {
			t.Fatalf("ParseRequest(%q) = %+v, %v; want a JSON syntax error", b, ev, err)
		}
		return ev, err
	case want.notObject:
		if !errors.Is(err, ErrNotObject) {
			t.Fatalf("ParseRequest(%q) = %+v, %v; want ErrNotObject", b, ev, err)
		}
		return ev, err
	case want.field != "":
		if !errors.As(err, &fe) || fe.Field != want.field || fe.Reason == "" || !strings.HasPrefix(err.Error(), want.field+": ") {
			t.Fatalf("ParseRequest(%q) = %+v, %v; want a FieldError for %s", b, ev, err, want.field)
		}
		return ev, err
	case err != nil:
		t.Fatalf("ParseRequest(%q) failed: %v; want %+v", b, err, want.ev)
	case ev != want.ev:
		t.Fatalf("ParseRequest(%q) = %+v; want %+v", b, ev, want.ev)
	}
	checkEvent(t, ev, now.Add(MaxFutureSkew).UnixMilli())

	// The API writes it to topic1, where the aggregator decodes it.
	enc, err := ev.Marshal()
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", ev, err)
	}
	if back, err := DecodeEvent(enc); err != nil || back != ev {
		t.Fatalf("DecodeEvent(%s) = %+v, %v; want %+v", enc, back, err, ev)
	}
	// A Go client re-sending it, with the timestamp as a number and as an
	// RFC 3339 string, gets the same event.
	ts := ev.Timestamp
	req, err := json.Marshal(Request{UserID: ev.UserID, EmojiType: ev.EmojiType, Timestamp: &ts})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ParseRequest(req, now); err != nil || again != ev {
		t.Fatalf("ParseRequest(%s) = %+v, %v; want %+v", req, again, err, ev)
	}
	rfc := fmt.Sprintf(`{"timestamp":%q,"emoji_type":%s,"user_id":%s}`,
		time.UnixMilli(ts).In(time.FixedZone("", -(3*3600+30*60))).Format(time.RFC3339Nano), appendJSONString(nil, ev.EmojiType, true), appendJSONString(nil, ev.UserID, true))
	if again, err := ParseRequest([]byte(rfc), now); err != nil || again != ev {
		t.Fatalf("ParseRequest(%s) = %+v, %v; want %+v", rfc, again, err, ev)
	}
	return ev, nil
}

// FuzzParseRequest feeds arbitrary bodies to ParseRequest. Properties: it
// never panics; its answer (error class, field, event) is the oracle's; an
// accepted event satisfies the contract, survives topic1 (Marshal then
// DecodeEvent) and parses the same when re-encoded as a request; a later
// server clock accepts it too.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"u","emoji_type":"🔥","timestamp":1767225600000}`,
		`{"user_id":"\ud83d","emoji_type":"👍🏽"}`,
		`{"user_id":"u","emoji_type":"🇮🇳","timestamp":"2025-12-31T23:59:59.999+05:30"}`,
		`[`, `{"timestamp":"2026-01-01T00:00:00Z"}`, "{\"user_id\":\"\xff\"}",
		"\v{\"user_id\":\"u\",\"emoji_type\":\"🔥\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := checkRequest(t, b, fuzzNow)
		if err != nil {
			return
		}
		later, err := ParseRequest(b, fuzzNow.Add(time.Hour))
		if err != nil || later.UserID != ev.UserID || later.EmojiType != ev.EmojiType ||
			(later.Timestamp != ev.Timestamp && later.Timestamp != fuzzNow.Add(time.Hour).UnixMilli()) {
			t.Fatalf("accepted %q at %v as %+v, but an hour later: %+v, %v", b, fuzzNow, ev, later, err)
		}
	})
}

// Timestamp forms of FuzzRequestFields.
const (
	tsMissing = iota
	tsNull
	tsInteger
	tsRFC3339UTC
	tsRFC3339Offset
	tsFraction   // 123.0: a number, but not an integer
	tsDigits     // "123": a string, but not RFC 3339
	tsExponent   // 1.23e+12
	tsNumberForm // how many forms there are
)

// FuzzRequestFields builds the request from its fields, encoded the ways
// clients do (raw or \u-escaped, timestamp as number, RFC 3339 string in
// various zones, null, or absent), and checks ParseRequest against the
// contract: accepted exactly when user_id is 1–128 bytes of valid UTF-8,
// emoji_type is one emoji and the timestamp is between the epoch and five
// minutes from now, and then with exactly these fields. It also checks that
// a topic1 record with these fields decodes back to them (or is rejected
// with the right reason), and the basic laws of ValidEmoji.
func FuzzRequestFields(f *testing.F) {
	f.Add("u1", "🔥", int64(1767225600000), uint8(tsInteger), false)
	f.Add("ü", "👨🏾‍💻", int64(1767225600000+5*60*1000), uint8(tsRFC3339Offset), true)
	f.Add("\xed\xa0\x80", "❤️", int64(0), uint8(tsMissing), false)
	f.Add("u", "🇮🇳🇺🇸", int64(-1), uint8(tsRFC3339UTC), false)
	limit := fuzzNow.Add(MaxFutureSkew).UnixMilli()
	f.Fuzz(func(t *testing.T, u, e string, ts int64, form uint8, escapeAll bool) {
		form %= tsNumberForm
		body := []byte(`{"user_id":`)
		body = appendJSONString(body, u, escapeAll)
		body = append(body, `,"emoji_type":`...)
		body = appendJSONString(body, e, escapeAll)
		tsOK, wantTS := ts >= 0 && ts <= limit, ts
		switch form {
		case tsMissing:
			tsOK, wantTS = true, fuzzNow.UnixMilli()
		case tsNull:
			body = append(body, `,"timestamp":null`...)
			tsOK, wantTS = true, fuzzNow.UnixMilli()
		case tsInteger:
			body = fmt.Appendf(body, `,"timestamp":%d`, ts)
		case tsRFC3339UTC:
			body = fmt.Appendf(body, `,"timestamp":%q`, time.UnixMilli(ts).UTC().Format(time.RFC3339Nano))
		case tsRFC3339Offset:
			zone := time.FixedZone("", 5*3600+30*60)
			body = fmt.Appendf(body, `,"timestamp":%q`, time.UnixMilli(ts).In(zone).Format(time.RFC3339Nano))
		case tsFraction:
			body = fmt.Appendf(body, `,"timestamp":%d.0`, ts)
			tsOK = false
		case tsDigits:
			body = fmt.Appendf(body, `,"timestamp":"%d"`, ts)
			tsOK = false
		case tsExponent:
			body = fmt.Appendf(body, `,"timestamp":%e`, float64(ts))
			tsOK = false
		}
		body = append(body, '}')

		userOK := utf8.ValidString(u) && len(u) >= 1 && len(u) <= MaxUserIDBytes
		emojiOK := utf8.ValidString(e) && ValidEmoji(e)
		wantField := ""
		switch {
		case !userOK:
			wantField = "user_id"
		case !emojiOK:
			wantField = "emoji_type"
		case !tsOK:
			wantField = "timestamp"
		}
		ev, err := ParseRequest(body, fuzzNow)
		var fe *FieldError
		switch {
		case wantField == "" && err != nil:
			t.Fatalf("ParseRequest(%s) rejected a valid emoji: %v", body, err)
		case wantField == "" && ev != (Event{UserID: u, EmojiType: e, Timestamp: wantTS}):
			t.Fatalf("ParseRequest(%s) = %+v; want %q %q %d", body, ev, u, e, wantTS)
		case wantField != "" && (!errors.As(err, &fe) || fe.Field != wantField):
			t.Fatalf("ParseRequest(%s) = %+v, %v; want a FieldError for %s", body, ev, err, wantField)
		}
		if wantField == "" {
			checkRequest(t, body, fuzzNow)
		}

		// The same fields as a topic1 record. Marshal repairs invalid
		// UTF-8, so only valid strings have an expected outcome.
		if utf8.ValidString(u) && utf8.ValidString(e) {
			rec := Event{UserID: u, EmojiType: e, Timestamp: ts}
			enc, err := rec.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			wantReason := ""
			switch {
			case !userOK:
				wantReason = ReasonInvalidUserID
			case !emojiOK:
				wantReason = ReasonInvalidEmoji
			case ts < 0:
				wantReason = ReasonInvalidTimestamp
			}
			back, err := DecodeEvent(enc)
			var de *DecodeError
			switch {
			case wantReason == "" && (err != nil || back != rec):
				t.Fatalf("DecodeEvent(%s) = %+v, %v; want %+v", enc, back, err, rec)
			case wantReason != "" && (!errors.As(err, &de) || de.Reason != wantReason):
				t.Fatalf("DecodeEvent(%s) = %+v, %v; want reason %q", enc, back, err, wantReason)
			}
		}

		// Laws of ValidEmoji: one grapheme cluster of valid UTF-8, bounded,
		// without ASCII text, and two of them are never one (unless the first
		// starts with a skin-tone modifier, which is a grapheme extender, so
		// "🏻🏻" is one cluster).
		if ValidEmoji(e) {
			if !utf8.ValidString(e) || len(e) > MaxEmojiBytes || uniseg.GraphemeClusterCount(e) != 1 {
				t.Fatalf("ValidEmoji(%q) but it is not one bounded grapheme cluster", e)
			}
			if strings.ContainsFunc(e, func(r rune) bool { return r < 0x80 && r != '#' && r != '*' && (r < '0' || r > '9') }) {
				t.Fatalf("ValidEmoji(%q) but it contains ASCII text (%U)", e, []rune(e))
			}
			if first, _ := utf8.DecodeRuneInString(e); !isModifier(first) && ValidEmoji(e+e) {
				t.Fatalf("ValidEmoji(%q) and ValidEmoji of it twice", e)
			}
		}
	})
}

// FuzzDecodeEvent feeds arbitrary topic1 values to DecodeEvent, as the
// aggregator's deserializer (EventSerde) does. Properties: no panic; an
// error is a *DecodeError with one of the documented reasons (and a cause
// for all but "empty value" and "not a json object"); the decision agrees
// with ParseRequest (a topic1 value is a request whose timestamp is an
// integer); an accepted event is valid and re-encodes canonically.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"user_id":"u","emoji_type":"🔥","timestamp":1}`))
	f.Add([]byte(`{"user_id":"u","emoji_type":"🔥🔥","timestamp":1}`))
	f.Add([]byte(`{"user_id":"u","emoji_type":"🔥","timestamp":"1970-01-01T00:00:00Z"}`))
	f.Add([]byte(" null "))
	reasons := map[string]bool{ReasonEmpty: true, ReasonInvalidJSON: true, ReasonNotObject: true,
		ReasonInvalidUserID: true, ReasonInvalidEmoji: true, ReasonInvalidTimestamp: true}
	fieldReason := map[string]string{"user_id": ReasonInvalidUserID, "emoji_type": ReasonInvalidEmoji, "timestamp": ReasonInvalidTimestamp}
	serde := EventSerde()
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeEvent(b)
		sev, serr := serde.Deserialize(b)
		if sev != ev || (serr == nil) != (err == nil) || (err != nil && serr.Error() != err.Error()) {
			t.Fatalf("EventSerde().Deserialize(%q) = %+v, %v; DecodeEvent = %+v, %v", b, sev, serr, ev, err)
		}
		pev, perr := ParseRequest(b, farNow)
		var raw rawRequest
		intTS := json.Unmarshal(b, &raw) == nil && isIntegerLiteral(raw.Timestamp)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !reasons[de.Reason] || !strings.Contains(err.Error(), de.Reason) {
				t.Fatalf("DecodeEvent(%q): error %v is not a DecodeError with a documented reason", b, err)
			}
			if de.Err == nil && de.Reason != ReasonEmpty && de.Reason != ReasonNotObject {
				t.Fatalf("DecodeEvent(%q): %v does not say why", b, err)
			}
			var fe *FieldError
			var se *json.SyntaxError
			agrees := false
			switch de.Reason {
			case ReasonEmpty:
				agrees = errors.As(perr, &se) || errors.Is(perr, ErrNotObject) // "" or null
			case ReasonInvalidJSON:
				agrees = errors.As(perr, &se)
			case ReasonNotObject:
				agrees = errors.Is(perr, ErrNotObject)
			case ReasonInvalidTimestamp:
				agrees = (perr == nil && !intTS) || (errors.As(perr, &fe) && fe.Field == "timestamp")
			default:
				agrees = errors.As(perr, &fe) && fieldReason[fe.Field] == de.Reason
			}
			if !agrees {
				t.Fatalf("DecodeEvent(%q): %v, but ParseRequest: %+v, %v", b, err, pev, perr)
			}
			return
		}
		checkEvent(t, ev, math.MaxInt64)
		if !intTS || perr != nil || pev != ev {
			t.Fatalf("DecodeEvent(%q) = %+v, but ParseRequest: %+v, %v", b, ev, pev, perr)
		}
		enc, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeEvent(enc)
		if err != nil || back != ev {
			t.Fatalf("DecodeEvent(Marshal(%+v)) = %+v, %v", ev, back, err)
		}
		if enc2, _ := back.Marshal(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not canonical: %s then %s", enc, enc2)
		}
	})
}

// FuzzDecodeResult feeds arbitrary topic2 values to DecodeResult.
// Properties: no panic; errors are *DecodeError with a documented reason;
// an accepted result describes a real window (end after start, one emoji,
// positive count, non-negative bursts) and survives Marshal and
// DecodeResult (and ResultSerde) unchanged.
func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(`{"window_start":0,"window_end":2000,"emoji_type":"🔥","count":1001,"bursts":2}`))
	f.Add([]byte(`{"window_start":2,"window_end":2,"emoji_type":"🔥","count":1,"bursts":1}`))
	f.Add([]byte(`{"window_start":-9223372036854775808,"window_end":9223372036854775807,"emoji_type":"\ud83c\uddee\ud83c\uddf3","count":1,"bursts":0}`))
	reasons := map[string]bool{ReasonEmpty: true, ReasonInvalidJSON: true, ReasonNotObject: true, ReasonInvalidResult: true}
	serde := ResultSerde()
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !reasons[de.Reason] || !strings.Contains(err.Error(), de.Reason) {
				t.Fatalf("DecodeResult(%q): error %v is not a DecodeError with a documented reason", b, err)
			}
			if de.Err == nil && de.Reason != ReasonEmpty && de.Reason != ReasonNotObject {
				t.Fatalf("DecodeResult(%q): %v does not say why", b, err)
			}
			return
		}
		if r.WindowEnd <= r.WindowStart || !ValidEmoji(r.EmojiType) || r.Count <= 0 || r.Bursts < 0 {
			t.Fatalf("DecodeResult(%q) accepted %+v", b, r)
		}
		if !json.Valid(b) {
			t.Fatalf("DecodeResult accepted invalid JSON %q", b)
		}
		enc, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if back, err := serde.Deserialize(enc); err != nil || back != r {
			t.Fatalf("ResultSerde round trip of %+v: %+v, %v", r, back, err)
		}
	})
}
