package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/examples/emostream/app"
	"github.com/emostream/emostream/examples/emostream/wire"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestEndToEnd is a black-box test of the emostream binary: it starts `run`
// (on the embedded broker, and on real Kafka with --brokers), POSTs known
// emojis with known timestamps, single and batched, and requires exactly the
// expected window results in topic2 on time, a late record in the DLQ and not
// counted, and the same results on /events.
func TestEndToEnd(t *testing.T) {
	bin := buildEmostream(t)

	for _, be := range []string{"embedded", "real"} {
		t.Run(be, func(t *testing.T) {
			in, out, dlq, brokers, args := runArgs(t, be)
			base, _ := startEmostream(t, bin, append(args, "--partitions", "2", "--scale", "2"))

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

// TestFirstRecordLate POSTs the README's second curl example, two emojis
// of 2026-03-01 (months in the past), to a fresh `emostream run`: empty
// topics, so each is the first record its partition's task ever sees.
// Both windows closed long ago by the wall clock, so both must go to the
// DLQ as late and neither may be counted in topic2, first record of a
// partition or not.
func TestFirstRecordLate(t *testing.T) {
	bin := buildEmostream(t)
	// Word for word the second command of examples/emostream/README.md's
	// quick start (and 1772366400000 is 2026-03-01T12:00:00Z too).
	const body = `[{"user_id":"me","emoji_type":"👍🏽","timestamp":"2026-03-01T12:00:00Z"},
       {"user_id":"you","emoji_type":"🇮🇳","timestamp":1772366400000}]`
	const ts = int64(1772366400000)
	require.Equal(t, ts, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "-d '"+body+"'", "the README's example changed; update this test")

	for _, be := range []string{"embedded", "real"} {
		t.Run(be, func(t *testing.T) {
			in, out, dlq, brokers, args := runArgs(t, be)
			base, logs := startEmostream(t, bin, args) // default --partitions 4, --window 2s, --grace 500ms
			require.Zero(t, endOffsets(t, brokers, in), "topic %s is not empty", in)

			resp, err := http.Post(base+"/api", "application/json", strings.NewReader(body))
			require.NoError(t, err)
			reply, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", reply)
			require.JSONEq(t, `{"accepted":2}`, string(reply))

			// Each emoji ends up in the DLQ or (wrongly) in a count; wait
			// for both outcomes, then a little longer for anything else.
			deadline := time.Now().Add(30 * time.Second)
			for endOffsets(t, brokers, dlq)+endOffsets(t, brokers, out) < 2 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			nDLQ, nOut := endOffsets(t, brokers, dlq), endOffsets(t, brokers, out)
			var counted []string
			if nOut > 0 {
				for _, m := range kafkatest.ConsumeN(t, brokers, out, int(nOut), 10*time.Second) {
					counted = append(counted, fmt.Sprintf("partition %d offset %d: %s", m.Partition, m.Offset, m.Value))
				}
			}
			require.Empty(t, counted, "records of 2026-03-01 were counted in %s; the app logs:\n%s", out, logs)
			require.EqualValues(t, 2, nDLQ, "want both emojis in %s (%s holds %d); the app logs:\n%s", dlq, in, endOffsets(t, brokers, in), logs)

			got := map[string]wire.Event{}
			for _, m := range kafkatest.ConsumeN(t, brokers, dlq, 2, 10*time.Second) {
				require.Equal(t, "late", m.Headers["error"], "DLQ record %d/%d: %v", m.Partition, m.Offset, m.Headers)
				require.Equal(t, in, m.Headers["source_topic"])
				require.NotEmpty(t, m.Headers["source_partition"])
				require.NotEmpty(t, m.Headers["source_offset"])
				// Stamped when dead-lettered (so the DLQ's retention keeps
				// it), the event's own time in source_timestamp.
				require.Equal(t, fmt.Sprint(ts), m.Headers["source_timestamp"])
				require.WithinDuration(t, time.Now(), m.Timestamp, 5*time.Minute)
				ev, err := wire.DecodeEvent([]byte(m.Value))
				require.NoError(t, err)
				require.Equal(t, ev.EmojiType, m.Key)
				got[ev.UserID] = ev
			}
			require.Equal(t, map[string]wire.Event{
				"me":  {UserID: "me", EmojiType: "👍🏽", Timestamp: ts},
				"you": {UserID: "you", EmojiType: "🇮🇳", Timestamp: ts},
			}, got)
		})
	}
}

// buildEmostream builds the binary under test into the test's temp dir.
func buildEmostream(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "emostream")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	return bin
}

// runArgs returns the topics, the brokers and the `run` flags for a
// backend: "embedded" (a broker of its own on a free port, default topic
// names) or "real" (KAFKA_BROKERS, topics named after the test).
func runArgs(t *testing.T, backend string) (in, out, dlq string, brokers, args []string) {
	in, out, dlq = "topic1", "topic2", "topic1.dlq"
	args = []string{"run", "--http", freeAddr(t)}
	if backend == "real" {
		brokers = kafkatest.RealBrokers(t)
		in, out, dlq = kafkatest.UniqueName(t, "in"), kafkatest.UniqueName(t, "out"), kafkatest.UniqueName(t, "dlq")
		args = append(args, "--brokers", strings.Join(brokers, ","), "--input-topic", in, "--output-topic", out, "--dlq-topic", dlq)
	} else {
		listen := freeAddr(t)
		brokers = []string{listen}
		args = append(args, "--broker-listen", listen)
	}
	return in, out, dlq, brokers, args
}

// startEmostream starts bin with args (whose --http flag is the second
// argument's value), waits until /healthz answers 200 and stops it with
// SIGTERM when the test ends; a bad exit fails the test. It returns the
// HTTP base URL and the process's output.
func startEmostream(t *testing.T, bin string, args []string) (string, *kafkatest.LogBuffer) {
	httpAddr := ""
	for i, a := range args {
		if a == "--http" && i+1 < len(args) {
			httpAddr = args[i+1]
		}
	}
	require.NotEmpty(t, httpAddr, "no --http in %v", args)
	cmd := exec.Command(bin, args...)
	// At debug level, with sarama's and franz-go's lines: printed only when
	// a test fails, where they tell a partition that never delivered from
	// a record that was processed but never written.
	cmd.Env = append(os.Environ(), app.EnvPrefix+"LOG_LEVEL=debug")
	logs := &kafkatest.LogBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("emostream exited with %v; logs:\n%s", err, logs)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("emostream did not stop on SIGTERM; logs:\n%s", logs)
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
	}, 60*time.Second, 100*time.Millisecond, "not healthy; logs:\n%s", logs)
	return base, logs
}

// endOffsets sums the high watermarks of topic's partitions: how many
// records it holds (the app writes no transactions here).
func endOffsets(t *testing.T, brokers []string, topic string) int64 {
	client, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer client.Close()
	parts, err := client.Partitions(topic)
	require.NoError(t, err)
	var n int64
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		require.NoError(t, err)
		n += off
	}
	return n
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
