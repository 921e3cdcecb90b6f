package kv

import (
	"fmt"
	"testing"
	"time"
)

func TestDbgMetrics(t *testing.T) {
	s := openPebble(t, t.TempDir()).(*pebbleStore)
	key := make([]byte, 16)
	val := make([]byte, 32)
	for i := range 100000 {
		_ = s.Put(benchKey(key, i), val)
	}
	time.Sleep(time.Second)
	fmt.Println(s.db.Metrics().String())
	st := time.Now()
	for i := range 100000 {
		_, _, _ = s.Get(benchKey(key, i))
	}
	fmt.Println(time.Since(st) / 100000)
	m := s.db.Metrics()
	fmt.Printf("%+v\n", m.BlockCache)
}
