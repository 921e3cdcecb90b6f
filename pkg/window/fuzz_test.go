package window

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/emostream/emostream/pkg/stream"
)

// The fuzz targets of this file check the two key encodings of window
// stores: the windowed key (WindowedSerde, the main store's key, also the
// key of result records) and the close-order index key. The seed corpus is
// under testdata/fuzz/<FuzzName>/; run one with
//
//	go test -run '^$' -fuzz '^FuzzWindowedKey$' -fuzztime 5m -parallel=1 ./pkg/window/

// FuzzWindowedKey: arbitrary bytes decode as a windowed key to an error
// wrapping ErrCorruptKey (or the key serde's error), or to a window that
// encodes back to exactly the same bytes; the same holds for index keys.
// Decoding never panics.
func FuzzWindowedKey(f *testing.F) {
	f.Add(encodeWindowKey([]byte("🔥"), 0, 2000))
	f.Add(encodeWindowKey(nil, -5, 5))
	f.Add([]byte{0x7f})
	f.Add(indexKey([]byte("k"), math.MinInt64, math.MaxInt64))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := WindowedSerde(stream.String())
		w, err := s.Deserialize(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptKey) {
				t.Fatalf("Deserialize(%x): %v does not wrap ErrCorruptKey", b, err)
			}
		} else {
			out, err := s.Serialize(w)
			if err != nil {
				t.Fatalf("windowed key %x -> %v does not encode: %v", b, w, err)
			}
			if !bytes.Equal(out, b) {
				// binary.Uvarint accepts a length with redundant 0x80 bytes
				// (81 00 for 1); only that may change, and only shorter.
				back, err := s.Deserialize(out)
				if len(out) >= len(b) || !bytes.Equal(out[len(out)-16:], b[len(b)-16:]) || err != nil || back != w {
					t.Fatalf("windowed key round trip %x -> %v -> %x -> %v, %v", b, w, out, back, err)
				}
			}
		}

		// A key serde's own error passes through; a key of the wrong size
		// for Int64 must not decode.
		if wi, err := WindowedSerde(stream.Int64()).Deserialize(b); err == nil {
			if kb, _, _, _ := decodeWindowKey(b); len(kb) != 8 {
				t.Fatalf("Int64 windowed key decoded from %x: %v", b, wi)
			}
		} else if kb, _, _, derr := decodeWindowKey(b); derr == nil && len(kb) != 8 {
			var se *stream.SerdeError
			if !errors.As(err, &se) {
				t.Fatalf("Int64 windowed key %x: %v is not the key serde's error", b, err)
			}
		}

		kb, start, end, err := decodeIndexKey(b)
		switch {
		case err != nil && len(b) >= 16:
			t.Fatalf("index key of %d bytes rejected", len(b))
		case err != nil && !errors.Is(err, ErrCorruptKey):
			t.Fatalf("decodeIndexKey(%x): %v does not wrap ErrCorruptKey", b, err)
		case err == nil && !bytes.Equal(indexKey(kb, start, end), b):
			t.Fatalf("index key round trip %x -> %x", b, indexKey(kb, start, end))
		}
	})
}

// cmpWindow orders windows of one key as the store must: by start, then end.
func cmpWindow(s1, e1, s2, e2 int64) int {
	return cmp.Or(cmp.Compare(s1, s2), cmp.Compare(e1, e2))
}

// FuzzWindowKeyOrder checks what the stores rely on, for two windows
// (k1, s1, e1) and (k2, s2, e2):
//   - both encodings round-trip, through WindowedSerde too;
//   - windowed keys of one key sort by start, then end, as signed numbers;
//   - all windows of one key are contiguous in the store: how two keys'
//     windows compare does not depend on the windows;
//   - so the range [encode(k1, s1, MinInt64), encode(k1, e1, MaxInt64)]
//     used by Fetch holds exactly k1's windows starting in [s1, e1];
//   - index keys sort by end (signed), then by the key bytes followed by the
//     start as an unsigned big-endian number (Kafka Streams' suppression
//     buffer order), and timeBound(ms) is below exactly the index keys with
//     end >= ms.
func FuzzWindowKeyOrder(f *testing.F) {
	f.Add([]byte("a"), int64(0), int64(2000), []byte("a"), int64(2000), int64(4000))
	f.Add([]byte("b"), int64(-1), int64(1), []byte("aa"), int64(-2), int64(0))
	f.Add([]byte("🔥"), int64(math.MinInt64), int64(math.MaxInt64), []byte("🔥\x00"), int64(math.MaxInt64), int64(math.MinInt64))
	f.Add([]byte{}, int64(5), int64(5), []byte{0}, int64(5), int64(5))
	f.Fuzz(func(t *testing.T, k1 []byte, s1, e1 int64, k2 []byte, s2, e2 int64) {
		w1, w2 := encodeWindowKey(k1, s1, e1), encodeWindowKey(k2, s2, e2)
		for _, w := range []struct {
			k      []byte
			s, e   int64
			enc    []byte
			encIdx []byte
		}{{k1, s1, e1, w1, indexKey(k1, s1, e1)}, {k2, s2, e2, w2, indexKey(k2, s2, e2)}} {
			kb, s, e, err := decodeWindowKey(w.enc)
			if err != nil || !bytes.Equal(kb, w.k) || s != w.s || e != w.e {
				t.Fatalf("decodeWindowKey(encode(%x, %d, %d)) = %x, %d, %d, %v", w.k, w.s, w.e, kb, s, e, err)
			}
			kb, s, e, err = decodeIndexKey(w.encIdx)
			if err != nil || !bytes.Equal(kb, w.k) || s != w.s || e != w.e {
				t.Fatalf("decodeIndexKey(indexKey(%x, %d, %d)) = %x, %d, %d, %v", w.k, w.s, w.e, kb, s, e, err)
			}
			serde := WindowedSerde(stream.Bytes())
			win := Windowed[[]byte]{Key: w.k, Start: time.UnixMilli(w.s), End: time.UnixMilli(w.e)}
			b, err := serde.Serialize(win)
			if err != nil || !bytes.Equal(b, w.enc) {
				t.Fatalf("WindowedSerde encodes %v as %x, %v; want %x", win, b, err, w.enc)
			}
			back, err := serde.Deserialize(b)
			if err != nil || !bytes.Equal(back.Key, w.k) || back.Start.UnixMilli() != w.s || back.End.UnixMilli() != w.e {
				t.Fatalf("WindowedSerde round trip %v -> %v, %v", win, back, err)
			}
		}

		// One key: order by start, then end.
		same := encodeWindowKey(k1, s2, e2)
		if got, want := bytes.Compare(w1, same), cmpWindow(s1, e1, s2, e2); got != want {
			t.Fatalf("key %x: windows [%d,%d] and [%d,%d] compare %d as bytes; want %d", k1, s1, e1, s2, e2, got, want)
		}
		// Two keys: their order does not depend on the windows.
		if !bytes.Equal(k1, k2) {
			if got, want := bytes.Compare(w1, w2), bytes.Compare(encodeWindowKey(k1, 0, 0), encodeWindowKey(k2, 0, 0)); got != want {
				t.Fatalf("keys %x and %x interleave: windows [%d,%d] and [%d,%d] compare %d, at 0 they compare %d", k1, k2, s1, e1, s2, e2, got, want)
			}
		}
		// Fetch's range for key k1, starts in [s1, e1].
		lo, hi := encodeWindowKey(k1, s1, math.MinInt64), encodeWindowKey(k1, e1, math.MaxInt64)
		in := bytes.Compare(lo, w2) <= 0 && bytes.Compare(w2, hi) <= 0
		if want := bytes.Equal(k1, k2) && s1 <= s2 && s2 <= e1; in != want {
			t.Fatalf("Fetch(%x, %d, %d) range holds (%x, %d, %d): %v; want %v", k1, s1, e1, k2, s2, e2, in, want)
		}

		// Index keys: end, then key bytes and unsigned start.
		i1, i2 := indexKey(k1, s1, e1), indexKey(k2, s2, e2)
		suffix := func(k []byte, start int64) []byte {
			return binary.BigEndian.AppendUint64(append([]byte(nil), k...), uint64(start))
		}
		want := cmp.Or(cmp.Compare(e1, e2), bytes.Compare(suffix(k1, s1), suffix(k2, s2)))
		if got := bytes.Compare(i1, i2); got != want {
			t.Fatalf("index keys (%x, %d, %d) and (%x, %d, %d) compare %d; want %d", k1, s1, e1, k2, s2, e2, got, want)
		}
		if below := bytes.Compare(timeBound(e1), i2) <= 0; below != (e2 >= e1) {
			t.Fatalf("timeBound(%d) <= index key with end %d: %v", e1, e2, below)
		}
	})
}
