package stream

import (
	"bytes"
	"testing"
)

// FuzzEnvelope: any stored bytes decode to an error or to an envelope that
// re-encodes to the same bytes; decoding never panics.
func FuzzEnvelope(f *testing.F) {
	f.Add(envelope{value: []byte("v")}.encode())
	f.Add(envelope{positions: []writePosition{{origin: "in/0", offset: 7, sub: 1}, {origin: "x/1>rep", offset: 1 << 40, sub: 3 << 16}}, value: []byte{0, 1}}.encode())
	f.Add([]byte{1, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		if got := e.encode(); !bytes.Equal(got, b) {
			// Non-minimal varints decode but re-encode shorter; decoding the
			// re-encoding must give the same envelope.
			e2, err := decodeEnvelope(got)
			if err != nil || len(e2.positions) != len(e.positions) || !bytes.Equal(e2.value, e.value) {
				t.Fatalf("re-encoding changed the envelope: %x -> %x", b, got)
			}
		}
	})
}

// FuzzSerdes: decoders of the built-in serdes never panic, and what they
// decode encodes back to the same bytes (JSON: to bytes that decode equal).
func FuzzSerdes(f *testing.F) {
	f.Add([]byte("hello"))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 42})
	f.Add([]byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := Int64().Deserialize(b); err == nil {
			out, _ := Int64().Serialize(v)
			if !bytes.Equal(out, b) {
				t.Fatalf("int64 round trip %x -> %x", b, out)
			}
		}
		s, _ := String().Deserialize(b)
		if out, _ := String().Serialize(s); !bytes.Equal(out, b) {
			t.Fatalf("string round trip %x", b)
		}
		if m, err := JSON[map[string]any]().Deserialize(b); err == nil {
			out, err := JSON[map[string]any]().Serialize(m)
			if err != nil {
				t.Fatalf("json re-encode: %v", err)
			}
			if _, err := JSON[map[string]any]().Deserialize(out); err != nil {
				t.Fatalf("json re-decode: %v", err)
			}
		}
	})
}
