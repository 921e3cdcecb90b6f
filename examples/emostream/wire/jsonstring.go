package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// jsonString decodes the raw JSON value b as a string, refusing what
// encoding/json would silently repair: invalid UTF-8 bytes and escaped lone
// surrogates ("\ud800"), both of which it turns into U+FFFD. The contract
// asks for valid UTF-8, so such input must be rejected, not rewritten.
// It returns a reason when b is not an acceptable string.
func jsonString(b []byte) (string, string) {
	if len(b) == 0 || b[0] != '"' {
		return "", "must be a string"
	}
	if !utf8.Valid(b) || !surrogatesPaired(b) {
		return "", "is not valid UTF-8"
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", "must be a string"
	}
	return s, ""
}

// surrogatesPaired reports whether every \uD800–\uDFFF escape in the JSON
// string literal b is part of a high-low surrogate pair.
func surrogatesPaired(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if i+1 >= len(b) {
			return true // malformed; json.Unmarshal will reject it
		}
		if b[i+1] != 'u' {
			i++ // skip the escaped character, which may be a backslash
			continue
		}
		u, ok := hex4(b, i+2)
		if !ok {
			return true // malformed; json.Unmarshal will reject it
		}
		switch {
		case u >= 0xDC00 && u <= 0xDFFF:
			return false // a low surrogate without its high half
		case u >= 0xD800 && u <= 0xDBFF:
			if i+7 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
				return false
			}
			lo, ok := hex4(b, i+8)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 11
		default:
			i += 5
		}
	}
	return true
}

func hex4(b []byte, at int) (uint64, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	u, err := strconv.ParseUint(string(b[at:at+4]), 16, 16)
	return u, err == nil
}

// trimJSONSpace removes the whitespace JSON allows around a value (RFC 8259
// section 2: space, tab, CR, LF). bytes.TrimSpace is wrong here: it also
// strips \v, \f, U+0085 and U+00A0, which would let invalid JSON such as
// "\v{...}" pass the json.Valid check that follows.
func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }
