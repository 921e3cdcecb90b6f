package stream

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Serde turns values of type T into bytes and back. Keys and values on every
// topic and in every state store go through a Serde, so a topology never handles
// untyped values.
type Serde[T any] interface {
	// Serialize encodes v. Implementations must be deterministic: the same value
	// always yields the same bytes, because keys are compared as bytes in stores
	// and partitioners.
	Serialize(v T) ([]byte, error)
	// Deserialize decodes b. It must not keep a reference to b, nor modify
	// it: state stores pass their stored bytes themselves.
	Deserialize(b []byte) (T, error)
}

// SerdeAppender is implemented by a Serde that can encode a value by
// appending it to a buffer. State stores use it to encode a value straight
// into the entry they write (key, dedup envelope and value in one
// allocation) instead of allocating Serialize's result and copying it. The
// built-in String, Bytes and Int64 serdes implement it.
type SerdeAppender[T any] interface {
	// AppendSerialize appends to b the bytes Serialize(v) returns and
	// returns the extended slice.
	AppendSerialize(b []byte, v T) ([]byte, error)
}

// appender returns s as a SerdeAppender, or nil.
func appender[T any](s Serde[T]) SerdeAppender[T] {
	a, _ := s.(SerdeAppender[T])
	return a
}

// SerdeFuncs builds a Serde from two functions, for custom formats.
func SerdeFuncs[T any](ser func(T) ([]byte, error), de func([]byte) (T, error)) Serde[T] {
	return funcSerde[T]{ser: ser, de: de}
}

type funcSerde[T any] struct {
	ser func(T) ([]byte, error)
	de  func([]byte) (T, error)
}

func (s funcSerde[T]) Serialize(v T) ([]byte, error)   { return s.ser(v) }
func (s funcSerde[T]) Deserialize(b []byte) (T, error) { return s.de(b) }

// String returns a Serde for UTF-8 strings (the bytes as they are).
func String() Serde[string] { return stringSerde{} }

type stringSerde struct{}

func (stringSerde) Serialize(v string) ([]byte, error)   { return []byte(v), nil }
func (stringSerde) Deserialize(b []byte) (string, error) { return string(b), nil }

// AppendSerialize implements SerdeAppender.
func (stringSerde) AppendSerialize(b []byte, v string) ([]byte, error) { return append(b, v...), nil }

// Bytes returns a Serde that passes byte slices through (copied on decode).
func Bytes() Serde[[]byte] { return bytesSerde{} }

type bytesSerde struct{}

func (bytesSerde) Serialize(v []byte) ([]byte, error) { return v, nil }

// AppendSerialize implements SerdeAppender.
func (bytesSerde) AppendSerialize(b, v []byte) ([]byte, error) { return append(b, v...), nil }
func (bytesSerde) Deserialize(b []byte) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	// append([]byte{}, ...), not append(nil, ...): an empty value must stay
	// empty, or a pass-through topology turns it into a tombstone (nil).
	return append([]byte{}, b...), nil
}

// Int64 returns a Serde for int64 as 8 big-endian bytes, the format of Kafka's
// LongSerializer, so Java applications read the same values.
func Int64() Serde[int64] { return int64Serde{} }

type int64Serde struct{}

func (int64Serde) Serialize(v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(v)), nil
}

// AppendSerialize implements SerdeAppender.
func (int64Serde) AppendSerialize(b []byte, v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(b, uint64(v)), nil
}

func (int64Serde) Deserialize(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, &SerdeError{Format: "int64", Err: fmt.Errorf("want 8 bytes, got %d", len(b))}
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// JSON returns a Serde using encoding/json.
func JSON[T any]() Serde[T] { return jsonSerde[T]{} }

type jsonSerde[T any] struct{}

func (jsonSerde[T]) Serialize(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &SerdeError{Format: "json", Err: err}
	}
	return b, nil
}

func (jsonSerde[T]) Deserialize(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, &SerdeError{Format: "json", Err: err}
	}
	return v, nil
}
