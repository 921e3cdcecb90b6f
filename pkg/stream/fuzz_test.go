package stream

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
	"unicode/utf8"
)

// The fuzz targets of this file check the byte formats the runtime reads
// back from Kafka and from disk: the dedup envelope around every stored
// value, and the built-in serdes. The seed corpus is under
// testdata/fuzz/<FuzzName>/; run one with
//
//	go test -run '^$' -fuzz '^FuzzEnvelope$' -fuzztime 5m -parallel=1 ./pkg/stream/

// FuzzEnvelope: any stored bytes decode to errBadEnvelope or to an envelope
// that re-encodes to the same bytes, or, when the input used non-minimal
// varints, to shorter bytes that decode to the same envelope. Decoding never
// panics, and a decoded value is a suffix of the input (the user's bytes,
// untouched).
func FuzzEnvelope(f *testing.F) {
	f.Add(envelope{value: []byte("v")}.encode())
	f.Add(envelope{positions: []storedPosition{{originID("in/0"), 7, 1}, {originID("x/1>rep"), 1 << 40, 3 << 16}}, value: []byte{0, 1}}.encode())
	f.Add(encodeV1([]v1Position{{"in/0", 7, 1}, {"x/1>rep", 1 << 40, 3 << 16}}, []byte{0, 1}))
	f.Add([]byte{1, 200, 1})
	f.Add([]byte{2, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, errBadEnvelope) {
				t.Fatalf("decodeEnvelope(%x): unexpected error %v", b, err)
			}
			return
		}
		if len(b) < 2 || (b[0] != envelopeVersion && b[0] != envelopeV1) {
			t.Fatalf("decodeEnvelope(%x) accepted a value without a version header", b)
		}
		if !bytes.HasSuffix(b, e.value) {
			t.Fatalf("decodeEnvelope(%x): value %x is not the input's tail", b, e.value)
		}
		got := e.encode()
		if b[0] == envelopeV1 {
			// An old envelope is written again as the current version,
			// with the same positions (origins by their ids) and value.
			e2, err := decodeEnvelope(got)
			if err != nil || got[0] != envelopeVersion || !sameEnvelope(e, e2) {
				t.Fatalf("version 1 envelope %x re-encoded as %x: %+v -> %+v, %v", b, got, e, e2, err)
			}
			return
		}
		if bytes.Equal(got, b) {
			return
		}
		// Non-minimal varints decode but re-encode shorter; decoding the
		// re-encoding must give the same envelope.
		if len(got) >= len(b) {
			t.Fatalf("re-encoding %x grew it to %x", b, got)
		}
		e2, err := decodeEnvelope(got)
		if err != nil || !sameEnvelope(e, e2) {
			t.Fatalf("re-encoding changed the envelope: %x -> %x (%+v -> %+v, %v)", b, got, e, e2, err)
		}
	})
}

func sameEnvelope(a, b envelope) bool {
	return reflect.DeepEqual(a.positions, b.positions) && bytes.Equal(a.value, b.value)
}

// FuzzEnvelopeRoundTrip builds an envelope of up to three positions and
// checks decode(encode(e)) == e, that positions of other origins stay
// apart (set replaces only its own origin, applied answers by offset and
// sub), and that truncating the encoding anywhere inside the positions is
// an error while truncating inside the value only shortens the value.
func FuzzEnvelopeRoundTrip(f *testing.F) {
	f.Add("in/0", int64(7), uint64(1), "in/1", int64(-1), uint64(0), uint8(2), []byte("v"))
	f.Add("", int64(math.MaxInt64), uint64(math.MaxUint64), "x/1>rep", int64(math.MinInt64), uint64(3<<16), uint8(3), []byte{})
	f.Fuzz(func(t *testing.T, o1 string, off1 int64, sub1 uint64, o2 string, off2 int64, sub2 uint64, n uint8, value []byte) {
		all := []writePosition{pos(o1, off1, sub1), pos(o2, off2, sub2), pos(o1+"/rep", off2, sub1)}
		var e envelope
		for _, p := range all[:n%4] {
			e.set(p)
		}
		e.value = value
		b := e.encode()
		got, err := decodeEnvelope(b)
		if err != nil {
			t.Fatalf("decodeEnvelope(encode(%+v)): %v", e, err)
		}
		if len(got.positions) != len(e.positions) || (len(e.positions) > 0 && !reflect.DeepEqual(got.positions, e.positions)) || !bytes.Equal(got.value, e.value) {
			t.Fatalf("round trip %+v -> %+v", e, got)
		}
		for _, q := range e.positions {
			p := writePosition{origin: "o", id: q.id, offset: q.offset, sub: q.sub}
			if !got.applied(p) || !got.applied(writePosition{"o", q.id, q.offset, 0}) {
				t.Fatalf("%+v: position %+v not applied after the round trip", got, p)
			}
			if q.offset < math.MaxInt64 && got.applied(writePosition{"o", q.id, q.offset + 1, 0}) {
				t.Fatalf("%+v: a later offset of origin %x counts as applied", got, q.id)
			}
			if q.sub < math.MaxUint64 && got.applied(writePosition{"o", q.id, q.offset, q.sub + 1}) {
				t.Fatalf("%+v: a later write of origin %x counts as applied", got, q.id)
			}
		}
		// Every byte of the positions is needed; the value is what is left.
		header := len(b) - len(value)
		for cut := 0; cut < len(b); cut++ {
			short, err := decodeEnvelope(b[:cut])
			switch {
			case cut < header && err == nil:
				t.Fatalf("%x truncated to %d of its %d header bytes decodes: %+v", b, cut, header, short)
			case cut >= header && (err != nil || !bytes.Equal(short.value, value[:cut-header]) || len(short.positions) != len(e.positions)):
				t.Fatalf("truncating %x to %d bytes (value part): %+v, %v", b, cut, short, err)
			}
		}
	})
}

// FuzzSerdes: decoders of the built-in serdes never panic, and what they
// decode encodes back to the same bytes (JSON: to bytes that decode equal
// and re-encode identically). Encoding then decoding s, n and b gives them
// back, and Bytes copies instead of aliasing its input.
func FuzzSerdes(f *testing.F) {
	f.Add([]byte("hello"), "hello", int64(42))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 42}, "", int64(math.MinInt64))
	f.Add([]byte(`{"a":1}`), "\xff", int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, s string, n int64) {
		// Arbitrary bytes.
		v, err := Int64().Deserialize(b)
		var se *SerdeError
		switch {
		case len(b) != 8 && (err == nil || !errors.As(err, &se) || se.Format != "int64"):
			t.Fatalf("Int64 decoded %d bytes: %d, %v", len(b), v, err)
		case len(b) == 8 && err != nil:
			t.Fatalf("Int64 rejected 8 bytes %x: %v", b, err)
		case err == nil:
			if out, _ := Int64().Serialize(v); !bytes.Equal(out, b) {
				t.Fatalf("int64 round trip %x -> %x", b, out)
			}
		}
		str, _ := String().Deserialize(b)
		if out, _ := String().Serialize(str); !bytes.Equal(out, b) {
			t.Fatalf("string round trip %x", b)
		}
		cp, _ := Bytes().Deserialize(b)
		if !bytes.Equal(cp, b) || (b == nil) != (cp == nil) {
			t.Fatalf("Bytes().Deserialize(%x) = %x", b, cp)
		}
		if len(b) > 0 && &cp[0] == &b[0] {
			t.Fatal("Bytes().Deserialize returned its input, not a copy")
		}
		checkJSON[map[string]any](t, b)
		checkJSON[any](t, b)
		checkJSON[[]string](t, b)
		checkJSON[int64](t, b)

		// Values.
		if nb, _ := Int64().Serialize(n); len(nb) != 8 {
			t.Fatalf("Int64 encoded %d as %d bytes", n, len(nb))
		} else if back, err := Int64().Deserialize(nb); err != nil || back != n {
			t.Fatalf("int64 round trip %d -> %d, %v", n, back, err)
		}
		if sb, _ := String().Serialize(s); string(sb) != s {
			t.Fatalf("String encoded %q as %q", s, sb)
		}
		type rec struct {
			S string
			N int64
			B []byte
		}
		in := rec{s, n, b}
		enc, err := JSON[rec]().Serialize(in)
		if err != nil {
			t.Fatalf("JSON encode %+v: %v", in, err)
		}
		out, err := JSON[rec]().Deserialize(enc)
		if !utf8.ValidString(s) {
			in.S = out.S // encoding/json replaces invalid UTF-8 by U+FFFD
		}
		if err != nil || out.S != in.S || out.N != in.N || !bytes.Equal(out.B, in.B) {
			t.Fatalf("JSON round trip %+v -> %s -> %+v, %v", in, enc, out, err)
		}
	})
}

// checkJSON: JSON[T] decoding b either fails with a *SerdeError or yields a
// value whose encoding decodes to an equal value and is a fixed point.
func checkJSON[T any](t *testing.T, b []byte) {
	t.Helper()
	serde := JSON[T]()
	v, err := serde.Deserialize(b)
	if err != nil {
		var se *SerdeError
		if !errors.As(err, &se) || se.Format != "json" {
			t.Fatalf("JSON[%T] error %v is not a SerdeError", v, err)
		}
		return
	}
	out, err := serde.Serialize(v)
	if err != nil {
		t.Fatalf("JSON[%T] re-encode %v: %v", v, v, err)
	}
	v2, err := serde.Deserialize(out)
	if err != nil || !reflect.DeepEqual(v, v2) {
		t.Fatalf("JSON[%T] %q -> %v -> %s -> %v, %v", v, b, v, out, v2, err)
	}
	if out2, _ := serde.Serialize(v2); !bytes.Equal(out, out2) {
		t.Fatalf("JSON[%T] encoding is not deterministic: %s then %s", v, out, out2)
	}
}
