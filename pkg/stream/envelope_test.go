package stream

import (
	"bytes"
	"testing"
)

// FuzzEnvelopeRewrite checks the allocation-free envelope path Update uses
// (scanEnvelope, rewriteEnvelope) against the plain decode/set/encode one.
func FuzzEnvelopeRewrite(f *testing.F) {
	two := envelope{positions: []writePosition{{origin: "in/0", offset: 7, sub: 1}, {origin: "x/1>rep", offset: 1 << 40, sub: 3 << 16}}, value: []byte{0, 1}}.encode()
	f.Add(two, "in/0", int64(7), uint64(1), []byte("v"))
	f.Add(two, "in/0", int64(8), uint64(1), []byte("v"))
	f.Add(two, "in/0", int64(7), uint64(0), []byte{})
	f.Add(two, "", int64(0), uint64(0), []byte("p"))
	f.Add(envelope{value: []byte("v")}.encode(), "in/3", int64(1), uint64(1), []byte("w"))
	f.Add([]byte{1, 200, 1}, "in/0", int64(1), uint64(1), []byte("w"))
	f.Fuzz(func(t *testing.T, raw []byte, origin string, off int64, sub uint64, value []byte) {
		p := writePosition{origin: origin, offset: off, sub: sub}
		e, derr := decodeEnvelope(raw)
		v, applied, serr := scanEnvelope(raw, p)
		if (derr == nil) != (serr == nil) {
			t.Fatalf("decodeEnvelope error %v, scanEnvelope error %v", derr, serr)
		}
		if derr != nil {
			return
		}
		origins := map[string]bool{}
		for _, q := range e.positions {
			if origins[q.origin] {
				return // the encoder never writes an origin twice
			}
			origins[q.origin] = true
		}
		if !bytes.Equal(v, e.value) || applied != (p.dedup() && e.applied(p)) {
			t.Fatalf("scanEnvelope(%x, %+v) = %x, %v; decode gives %x, applied %v", raw, p, v, applied, e.value, e.applied(p))
		}
		got, err := rewriteEnvelope(nil, raw, p, value)
		if err != nil {
			t.Fatal(err)
		}
		want := e
		want.positions = append([]writePosition(nil), e.positions...)
		if p.dedup() {
			want.set(p)
		}
		g, err := decodeEnvelope(got)
		if err != nil {
			t.Fatalf("rewriteEnvelope wrote an undecodable envelope %x: %v", got, err)
		}
		if !bytes.Equal(g.value, value) || len(g.positions) != len(want.positions) {
			t.Fatalf("rewrite %+v -> %+v, want %+v", e, g, want)
		}
		for _, q := range want.positions {
			found := false
			for _, r := range g.positions {
				if r == q {
					found = true
				}
			}
			if !found {
				t.Fatalf("rewrite %+v -> %+v lost position %+v", e, g, q)
			}
		}
	})
}
