package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestEndToEnd is a black-box test of the emostream binary: it starts `run`
// (on the embedded broker, and on real Kafka with --brokers), POSTs known
// emojis with known timestamps, single and batched, and requires exactly the
// expected window results in topic2 on time, a late record in the DLQ and not
// counted, and the same results on /events.
func TestEndToEnd(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "emostream")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	for _, be := range []string{"embedded", "real"} {
		t.Run(be, func(t *testing.T) {
			httpAddr := freeAddr(t)
			in, out, dlq := "topic1", "topic2", "topic1.dlq"
			args := []string{"run", "--http", httpAddr, "--partitions", "2", "--scale", "2"}
			var brokers []string
			if be == "real" {
				brokers = kafkatest.RealBrokers(t)
				in, out, dlq = kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out"), kafkatest.UniqueName(t, "dlq")
				args = append(args, "--brokers", strings.Join(brokers, ","), "--input-topic", in, "--output-topic", out, "--dlq-topic", dlq)
			} else {
				listen := freeAddr(t)
				brokers = []string{listen}
				args = append(args, "--broker-listen", listen)
			}
			cmd := exec.Command(bin, args...)
			var logs bytes.Buffer
			cmd.Stdout, cmd.Stderr = &logs, &logs
			require.NoError(t, cmd.Start())
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("emostream exited with %v; logs:\n%s", err, logs.String())
					}
				case <-time.After(30 * time.Second):
					_ = cmd.Process.Kill()
					t.Errorf("emostream did not stop on SIGTERM; logs:\n%s", logs.String())
				}
			})
			base := "http://" + httpAddr
			require.Eventually(t, func() bool {
				resp, err := http.Get(base + "/healthz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			}, 60*time.Second, 100*time.Millisecond, "not healthy; logs:\n%s", &logs)

			events := collectEvents(t, base+"/events")

			// A window a few seconds ahead, so every POST is in before it ends.
			ws := (time.Now().Add(4*time.Second).UnixMilli()/2000)*2000 + 2000
			post := func(body string) {
				resp, err := http.Post(base+"/api", "application/json", strings.NewReader(body))
				require.NoError(t, err)
				defer resp.Body.Close()
				require.Equal(t, http.StatusAccepted, resp.StatusCode)
			}
			for i := range 3 {
				post(fmt.Sprintf(`{"user_id":"u%d","emoji_type":"🔥","timestamp":%d}`, i, ws+int64(i*100)))
			}
			post(fmt.Sprintf(`[{"user_id":"a","emoji_type":"👍🏽","timestamp":%d},{"user_id":"b","emoji_type":"👍🏽","timestamp":%d},`+
				`{"user_id":"c","emoji_type":"🔥","timestamp":"%s"},{"user_id":"d","emoji_type":"🇮🇳","timestamp":%d},`+
				`{"user_id":"e","emoji_type":"🇮🇳","timestamp":%d},{"user_id":"f","emoji_type":"🇮🇳","timestamp":%d},`+
				`{"user_id":"g","emoji_type":"🇮🇳","timestamp":%d},{"user_id":"h","emoji_type":"🇮🇳","timestamp":%d}]`,
				ws+10, ws+1999, time.UnixMilli(ws+1500).UTC().Format(time.RFC3339Nano), ws+1, ws+2, ws+3, ws+4, ws+5))

			want := map[string]wire.Result{
				"🔥":  {WindowStart: ws, WindowEnd: ws + 2000, EmojiType: "🔥", Count: 4, Bursts: 2},
				"👍🏽": {WindowStart: ws, WindowEnd: ws + 2000, EmojiType: "👍🏽", Count: 2, Bursts: 1},
				"🇮🇳": {WindowStart: ws, WindowEnd: ws + 2000, EmojiType: "🇮🇳", Count: 5, Bursts: 3},
			}
			msgs := kafkatest.ConsumeN(t, brokers, out, len(want), 30*time.Second)
			arrived := time.Now()
			// Contract: within 1 s after window_end + grace (500 ms) by the wall clock.
			require.WithinDuration(t, time.UnixMilli(ws+2500), arrived, time.Second, "results late")
			got := map[string]wire.Result{}
			for _, m := range msgs {
				r, err := wire.DecodeResult([]byte(m.Value))
				require.NoError(t, err)
				require.Equal(t, r.EmojiType, m.Key)
				got[m.Key] = r
			}
			require.Equal(t, want, got)

			// Late: the window closed, so this emoji goes to the DLQ, not into a count.
			post(fmt.Sprintf(`{"user_id":"late","emoji_type":"🔥","timestamp":%d}`, ws+100))
			late := kafkatest.ConsumeN(t, brokers, dlq, 1, 30*time.Second)
			require.Equal(t, "late", late[0].Headers["error"])
			require.Equal(t, in, late[0].Headers["source_topic"])
			require.NotEmpty(t, late[0].Headers["source_offset"])
			ev, err := wire.DecodeEvent([]byte(late[0].Value))
			require.NoError(t, err)
			require.Equal(t, "late", ev.UserID)
			time.Sleep(1500 * time.Millisecond)
			require.Len(t, kafkatest.ConsumeN(t, brokers, out, len(want), 5*time.Second), len(want), "a late record changed topic2")

			// /events streamed the same results.
			require.Eventually(t, func() bool { return len(events.snapshot()) >= len(want) }, 10*time.Second, 50*time.Millisecond)
			sse := map[string]wire.Result{}
			for _, e := range events.snapshot() {
				sse[e.EmojiType] = e
			}
			require.Equal(t, want, sse)
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

type sseLog struct {
	mu  sync.Mutex
	got []wire.Result
}

func (l *sseLog) snapshot() []wire.Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]wire.Result(nil), l.got...)
}

// collectEvents reads `event: window` records from an SSE endpoint until the
// test ends.
func collectEvents(t *testing.T, url string) *sseLog {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/event-stream")
	l := &sseLog{}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:") && event == "window":
				var r wire.Result
				if json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "data:"))), &r) == nil {
					l.mu.Lock()
					l.got = append(l.got, r)
					l.mu.Unlock()
				}
			case line == "":
				event = ""
			}
		}
	}()
	return l
}
