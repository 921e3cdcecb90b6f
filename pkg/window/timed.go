package window

import (
	"encoding/binary"
	"fmt"

	"github.com/emostream/emostream/pkg/stream"
)

// timed is a window's aggregate with the largest timestamp of the records in
// it, as Kafka Streams keeps a ValueAndTimestamp next to each window: results
// carry that timestamp, and sliding windows need it to place new windows.
type timed[A any] struct {
	ts    int64 // ms
	value A
	// empty marks a Reduce window no record was added to yet (never
	// stored: a stored window holds at least one record).
	empty bool
}

// timedSerde stores a timed aggregate as 8 big-endian bytes of timestamp
// followed by the aggregate's own encoding.
type timedSerde[A any] struct {
	s stream.Serde[A]
	a stream.SerdeAppender[A] // s, if it is one
}

// newTimedSerde returns the serde of s's timed aggregates.
func newTimedSerde[A any](s stream.Serde[A]) timedSerde[A] {
	a, _ := s.(stream.SerdeAppender[A])
	return timedSerde[A]{s: s, a: a}
}

// AppendSerialize implements stream.SerdeAppender: the stores write a
// window's value straight into their entry.
func (t timedSerde[A]) AppendSerialize(b []byte, v timed[A]) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, uint64(v.ts))
	if t.a != nil {
		return t.a.AppendSerialize(b, v.value)
	}
	vb, err := t.s.Serialize(v.value)
	if err != nil {
		return nil, err
	}
	return append(b, vb...), nil
}

func (t timedSerde[A]) Serialize(v timed[A]) ([]byte, error) {
	b, err := t.s.Serialize(v.value)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8, 8+len(b))
	binary.BigEndian.PutUint64(out, uint64(v.ts))
	return append(out, b...), nil
}

func (t timedSerde[A]) Deserialize(b []byte) (timed[A], error) {
	if len(b) < 8 {
		return timed[A]{}, fmt.Errorf("%w: window value of %d bytes", ErrCorruptValue, len(b))
	}
	v, err := t.s.Deserialize(b[8:])
	return timed[A]{ts: int64(binary.BigEndian.Uint64(b)), value: v}, err
}
