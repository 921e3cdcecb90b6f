package dashboard

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFanout times a window's results (a clump of 10, as the
// aggregator writes them together) from broadcast to the last of many
// viewers over real loopback HTTP connections: the part of the delivery
// latency the dashboard adds. ms/last-write is the server's part alone:
// from the broadcast to the last write to a viewer's socket (the readers,
// in the same process, share the CPU with it). Profile it with
//
//	go test -run '^$' -bench Fanout -cpuprofile cpu.out ./examples/emostream/dashboard/
func BenchmarkFanout(b *testing.B) {
	for _, viewers := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) { benchFanout(b, viewers) })
	}
}

func benchFanout(b *testing.B, viewers int) {
	s, err := New(Config{Brokers: []string{"127.0.0.1:1"}, MaxViewers: viewers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var written atomic.Int64 // ns from broadcast to the last pooled write, summed
	s.hub.fanout = func(d time.Duration) { written.Add(int64(d)) }
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	defer s.CloseStreams()

	var got atomic.Int64 // frames received, all viewers together
	var wg sync.WaitGroup
	for range viewers {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReaderSize(conn, 4096)
		for { // headers and the greeting
			line, err := r.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if bytes.Contains(line, []byte(": connected")) {
				break
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				if bytes.HasPrefix(line, []byte("data: ")) {
					got.Add(1)
				}
			}
		}()
	}
	frame := []byte(`event: window` + "\n" + `data: {"window_start":0,"window_end":2000,"emoji_type":"🔥","count":1234,"bursts":2}` + "\n\n")
	const clump = 10
	var spread time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		for range clump {
			s.hub.broadcast(frame)
		}
		want := int64(i+1) * clump * int64(viewers)
		for got.Load() < want {
			time.Sleep(50 * time.Microsecond)
		}
		spread += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(spread.Microseconds())/float64(b.N)/1000, "ms/last-viewer")
	b.ReportMetric(float64(written.Load())/float64(b.N)/1e6, "ms/last-write")
	s.CloseStreams()
	srv.CloseClientConnections()
	wg.Wait()
}
