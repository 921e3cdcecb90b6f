package window

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/emostream/emostream/pkg/stream"
)

// WindowedSerde encodes a Windowed key as uvarint(len(key)) | key | start | end,
// with start and end as big-endian milliseconds whose sign bit is flipped, so
// the windows of one key sort together, by start, then end. Different keys
// sort by the length-prefixed key bytes (shorter keys first), not
// lexicographically by key.
func WindowedSerde[K any](keySerde stream.Serde[K]) stream.Serde[Windowed[K]] {
	return windowedSerde[K]{ks: keySerde}
}

type windowedSerde[K any] struct{ ks stream.Serde[K] }

func (s windowedSerde[K]) Serialize(w Windowed[K]) ([]byte, error) {
	kb, err := s.ks.Serialize(w.Key)
	if err != nil {
		return nil, err
	}
	return encodeWindowKey(kb, w.Start.UnixMilli(), w.End.UnixMilli()), nil
}

func (s windowedSerde[K]) Deserialize(b []byte) (Windowed[K], error) {
	var w Windowed[K]
	kb, start, end, err := decodeWindowKey(b)
	if err != nil {
		return w, err
	}
	if w.Key, err = s.ks.Deserialize(kb); err != nil {
		return w, err
	}
	w.Start, w.End = time.UnixMilli(start).UTC(), time.UnixMilli(end).UTC()
	return w, nil
}

func putTime(b []byte, ms int64) { binary.BigEndian.PutUint64(b, uint64(ms)^(1<<63)) }
func getTime(b []byte) int64     { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func encodeWindowKey(kb []byte, start, end int64) []byte {
	return appendWindowKey(make([]byte, 0, binary.MaxVarintLen32+len(kb)+16), kb, start, end)
}

// appendWindowKey appends the encoding of encodeWindowKey to b.
func appendWindowKey(b, kb []byte, start, end int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(kb)))
	b = append(b, kb...)
	b = append(b, make([]byte, 16)...)
	putTime(b[len(b)-16:], start)
	putTime(b[len(b)-8:], end)
	return b
}

func decodeWindowKey(b []byte) (kb []byte, start, end int64, err error) {
	n, k := binary.Uvarint(b)
	// n comes from the input: compare without n+16, which can wrap around.
	if k <= 0 || n > uint64(len(b)-k) || uint64(len(b)-k)-n != 16 {
		return nil, 0, 0, fmt.Errorf("%w: %d bytes", ErrCorruptKey, len(b))
	}
	kb = b[k : k+int(n)]
	return kb, getTime(b[k+int(n):]), getTime(b[k+int(n)+8:]), nil
}

// indexKey orders windows by end, then by the key bytes followed by the
// start as a plain big-endian number: the order of Kafka Streams' suppression
// buffer (time, then the serialized windowed key), so emit-final results come
// out in the same order even when one key is a prefix of another.
func indexKey(kb []byte, start, end int64) []byte {
	return appendIndexKey(make([]byte, 0, 8+len(kb)+8), kb, start, end)
}

// appendIndexKey appends the index key of the window to b.
func appendIndexKey(b, kb []byte, start, end int64) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(end)^(1<<63))
	b = append(b, kb...)
	return binary.BigEndian.AppendUint64(b, uint64(start))
}

func decodeIndexKey(b []byte) (kb []byte, start, end int64, err error) {
	if len(b) < 16 {
		return nil, 0, 0, fmt.Errorf("%w: index key of %d bytes", ErrCorruptKey, len(b))
	}
	return b[8 : len(b)-8], int64(binary.BigEndian.Uint64(b[len(b)-8:])), getTime(b), nil
}

// timeBound is the smallest index key with end >= ms.
func timeBound(ms int64) []byte {
	b := make([]byte, 8)
	putTime(b, ms)
	return b
}

// rawSerde stores raw bytes as keys; the typed side is the window package's.
type rawSerde struct{}

func (rawSerde) Serialize(b []byte) ([]byte, error)   { return b, nil }
func (rawSerde) Deserialize(b []byte) ([]byte, error) { return append([]byte(nil), b...), nil }
