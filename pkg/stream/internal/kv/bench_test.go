package kv

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// benchKey fills a 16-byte key; multiplying by an odd constant scatters
// consecutive i across the key space so inserts are not append-only.
func benchKey(buf []byte, i int) []byte {
	binary.BigEndian.PutUint64(buf[:8], uint64(i)*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(buf[8:16], uint64(i))
	return buf[:16]
}

func benchBackends() []backend {
	return []backend{
		{"memory", func(t testing.TB) Store { return closeLater(t, NewMemory()) }},
		{"pebble", func(t testing.TB) Store { return openPebble(t, t.TempDir()) }},
	}
}

func BenchmarkPut(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			key := make([]byte, 16)
			val := make([]byte, 32)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := s.Put(benchKey(key, i), val); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	const preload = 100_000
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			key := make([]byte, 16)
			val := make([]byte, 32)
			for i := range preload {
				if err := s.Put(benchKey(key, i), val); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, ok, err := s.Get(benchKey(key, i%preload)); err != nil || !ok {
					b.Fatal("missing key", err)
				}
			}
		})
	}
}

// BenchmarkWindowChurn is a windowed count's store traffic at 10,000 keys
// per window (issue #14): per op, the entry of a key's new window is put,
// read back (its close) and, three windows later, deleted (its purge). Keys
// are shaped like a window store's (pkg/window adds a length in front and
// the window's end behind): the key's bytes, then the window start. About
// 30,000 entries are live and keys share their first bytes.
func BenchmarkWindowChurn(b *testing.B) {
	const keys, keep = 10_000, 3
	for _, be := range benchBackends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			val := make([]byte, 24)
			wk := func(i int) []byte {
				k := fmt.Appendf(nil, "\xf0\x9f\x98\x82:%d", (i%keys)*7919%keys)
				return binary.BigEndian.AppendUint64(k, uint64(i/keys)*2000)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k := wk(i)
				if err := s.Put(k, val); err != nil {
					b.Fatal(err)
				}
				if _, ok, err := s.GetShared(k); err != nil || !ok {
					b.Fatal("missing key", err)
				}
				if i >= keep*keys {
					if err := s.Delete(wk(i - keep*keys)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
