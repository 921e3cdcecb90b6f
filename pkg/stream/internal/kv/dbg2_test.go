package kv

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func TestDbgRaw(t *testing.T) {
	for _, fmv := range []pebble.FormatMajorVersion{0, pebble.FormatNewest} {
		c := pebble.NewCache(8 << 20)
		db, err := pebble.Open(t.TempDir(), &pebble.Options{Cache: c, FormatMajorVersion: fmv, Logger: slogLogger{}})
		if err != nil {
			t.Fatal(err)
		}
		key := make([]byte, 16)
		val := make([]byte, 32)
		for i := range 100000 {
			_ = db.Set(benchKey(key, i), val, pebble.NoSync)
		}
		_ = db.Flush()
		time.Sleep(500 * time.Millisecond)
		for range 2 {
			st := time.Now()
			for i := range 100000 {
				_, cl, err := db.Get(benchKey(key, i))
				if err != nil {
					t.Fatal(err)
				}
				cl.Close()
			}
			fmt.Println(fmv, time.Since(st)/100000, fmt.Sprintf("%+v", db.Metrics().BlockCache))
		}
		db.Close()
		c.Unref()
	}
}
