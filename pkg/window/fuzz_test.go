package window

import (
	"bytes"
	"testing"

	"github.com/emostream/emostream/pkg/stream"
)

// FuzzWindowedKey: windowed keys decode to an error or round-trip exactly;
// decoding never panics.
func FuzzWindowedKey(f *testing.F) {
	f.Add(encodeWindowKey([]byte("🔥"), 0, 2000))
	f.Add(encodeWindowKey(nil, -5, 5))
	f.Add([]byte{0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := WindowedSerde(stream.String())
		w, err := s.Deserialize(b)
		if err != nil {
			return
		}
		out, err := s.Serialize(w)
		if err != nil {
			t.Fatal(err)
		}
		if kb, start, end, err := decodeWindowKey(b); err == nil && !bytes.Equal(out, encodeWindowKey(kb, start, end)) {
			t.Fatalf("round trip %x -> %x", b, out)
		}
		if _, _, _, err := decodeIndexKey(b); err != nil && len(b) >= 16 {
			t.Fatalf("index key of %d bytes rejected", len(b))
		}
	})
}
