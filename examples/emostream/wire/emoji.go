package wire

import (
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// MaxEmojiBytes bounds emoji_type. The longest sequences Unicode recommends
// (families, couples with skin tones, subdivision flags) need fewer than 40
// bytes, but a chain of pictographs joined by ZWJ stays one grapheme cluster
// however long it grows, so without a cap one "emoji" could be a megabyte.
const MaxEmojiBytes = 64

// Code points that shape emoji sequences.
const (
	zwj            = 0x200D  // ZERO WIDTH JOINER
	vs15           = 0xFE0E  // text presentation selector
	vs16           = 0xFE0F  // emoji presentation selector
	keycap         = 0x20E3  // COMBINING ENCLOSING KEYCAP
	riFirst        = 0x1F1E6 // REGIONAL INDICATOR SYMBOL LETTER A
	riLast         = 0x1F1FF // ... LETTER Z
	modifierFirst  = 0x1F3FB // EMOJI MODIFIER FITZPATRICK TYPE-1-2
	modifierLast   = 0x1F3FF // ... TYPE-6
	tagFirst       = 0xE0020 // TAG SPACE (subdivision flags)
	tagLast        = 0xE007F // CANCEL TAG
	pictographDemo = "\u200d\U0001F600"
)

// ValidEmoji reports whether s is exactly one emoji grapheme cluster, such as
// "🔥", "👍🏽", "❤️", "🇮🇳", "1️⃣", "👩‍👩‍👧" or "🏴󠁧󠁢󠁳󠁣󠁴󠁿".
func ValidEmoji(s string) bool { return emojiProblem(s) == "" }

// emojiProblem returns why s is not one emoji, or "" when it is.
func emojiProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxEmojiBytes:
		return "is longer than 64 bytes"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case uniseg.GraphemeClusterCount(s) != 1:
		return "must be exactly one emoji"
	}
	runes := []rune(s)
	first := runes[0]
	switch {
	case isRegionalIndicator(first):
		// A flag is a pair of regional indicators; a lone one is a letter.
		if len(runes) == 2 && isRegionalIndicator(runes[1]) {
			return ""
		}
	case isKeycapBase(first):
		// "1️⃣" is the digit, an optional VS16 and the keycap mark; the bare
		// digit is plain text.
		rest := runes[1:]
		if len(rest) > 0 && rest[0] == vs16 {
			rest = rest[1:]
		}
		if len(rest) == 1 && rest[0] == keycap {
			return ""
		}
	case isPictographic(first) || isModifier(first):
		if pictographicSequence(runes[1:]) {
			return ""
		}
	}
	return "must be an emoji"
}

// pictographicSequence checks what may follow a pictograph inside one emoji:
// presentation selectors, skin-tone modifiers, tag characters (subdivision
// flags), a keycap mark, and ZWJ joining another pictograph. Anything else,
// such as a combining accent, makes the cluster text rather than an emoji.
func pictographicSequence(rest []rune) bool {
	joined := false // the previous rune was a ZWJ, so a pictograph must follow
	for _, r := range rest {
		if joined {
			if !isPictographic(r) {
				return false
			}
			joined = false
			continue
		}
		switch {
		case r == vs15, r == vs16, r == keycap, isModifier(r), r >= tagFirst && r <= tagLast:
		case r == zwj:
			joined = true
		default:
			return false
		}
	}
	return !joined
}

func isRegionalIndicator(r rune) bool { return r >= riFirst && r <= riLast }
func isModifier(r rune) bool          { return r >= modifierFirst && r <= modifierLast }
func isKeycapBase(r rune) bool        { return r == '#' || r == '*' || (r >= '0' && r <= '9') }

// isPictographic reports whether r has the Unicode property
// Extended_Pictographic. uniseg keeps its property tables unexported, but it
// implements grapheme rule GB11, which glues "X ZWJ 😀" into one cluster
// exactly when X is Extended_Pictographic. Asking uniseg that question keeps
// us on its Unicode version instead of a hand-copied table that would drift.
func isPictographic(r rune) bool {
	if r < 0xA9 || r == zwj || !utf8.ValidRune(r) {
		return false // nothing below © is pictographic
	}
	return uniseg.GraphemeClusterCount(string(r)+pictographDemo) == 1
}
