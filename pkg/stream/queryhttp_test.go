package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/emostream/emostream/pkg/window"
)

func parseString(s string) (string, error) { return s, nil }

// TestIntegrationQueriesAcrossInstances runs three instances of a count
// over a 6-partition topic, each advertising its QueryHandler's address
// (ApplicationServer), on the embedded broker and on the real Kafka. A
// key query through any instance answers for every key — forwarded to the
// instance that hosts it — and a range query through any instance returns
// every key; QueryMetadataForKey names the same host on all instances.
func TestIntegrationQueriesAcrossInstances(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in := kafkatest.UniqueName(t, "in")
			appID := kafkatest.UniqueName(t, "app")
			kafkatest.CreateTopic(t, brokers, in, 6)
			const keys = 24
			var recs []kafkatest.KV
			want := map[string]int64{}
			for i := range 3 * keys {
				k := fmt.Sprintf("k%02d", i%keys)
				if i%keys < 8 || i < keys {
					recs = append(recs, kafkatest.KV{Key: k, Value: "x"})
					want[k]++
				}
			}
			kafkatest.ProduceStrings(t, brokers, in, recs)
			top := func() *stream.Topology {
				b := stream.NewBuilder()
				// Grouped through a repartition topic, which the app writes
				// with murmur2 as Java's producer would (kafkatest's producer
				// uses sarama's FNV hash; QueryMetadataForKey assumes murmur2).
				src := stream.Source(b, in, stream.String(), stream.String())
				grouped := stream.GroupBy(src, func(k, _ string) string { return k },
					stream.Grouped[string, string]{Name: "by-key", KeySerde: stream.String(), ValueSerde: stream.String()})
				stream.Count(grouped, stream.Materialized[string, int64]{StoreName: "counts"})
				// And per hour, in a window store.
				window.Count(grouped, window.OfSize(time.Hour), window.Named("hourly"), window.DropLateRecords())
				top, err := b.Build()
				require.NoError(t, err)
				return top
			}
			type instance struct {
				app  *stream.App
				addr string
			}
			var insts []instance
			for range 3 {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				addr := ln.Addr().String()
				app, stop := startApp(t, top(), stream.Brokers(brokers...), stream.ApplicationID(appID), stream.ApplicationServer(addr))
				defer stop()
				h := stream.NewQueryHandler(app)
				stream.ServeKeyValueStore[string, int64](h, "counts", stream.String(), parseString)
				window.ServeWindowStore[string, int64](h, "hourly", stream.String(), parseString)
				srv := &http.Server{Handler: h}
				go func() { _ = srv.Serve(ln) }()
				defer srv.Close()
				insts = append(insts, instance{app, addr})
			}
			var last string
			get := func(addr, path string, out any) int {
				resp, err := http.Get("http://" + addr + path)
				if err != nil {
					last = err.Error()
					return 0
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				last = fmt.Sprintf("GET %s%s: %d %s", addr, path, resp.StatusCode, body)
				if out != nil {
					_ = json.Unmarshal(body, out)
				}
				return resp.StatusCode
			}
			// The group has spread the tasks over the three instances.
			require.True(t, assertEventually(90*time.Second, func() bool {
				for _, inst := range insts {
					if len(inst.app.ActiveEndpoints()) != 3 {
						return false
					}
				}
				return true
			}), "the group never spread its tasks over 3 instances")
			// Every key through every instance.
			ok := assertEventually(90*time.Second, func() bool {
				for _, inst := range insts {
					for k, n := range want {
						var ans struct {
							Key   string `json:"key"`
							Value int64  `json:"value"`
						}
						if get(inst.addr, "/stores/counts/keys/"+url.PathEscape(k), &ans) != http.StatusOK || ans.Value != n || ans.Key != k {
							return false
						}
					}
				}
				return true
			})
			require.True(t, ok, "last answer: %s", last)
			// Window fetches too: each key's hour, through every instance.
			for _, inst := range insts {
				for k, n := range want {
					var ans struct {
						Windows []struct {
							Start, End, Value int64
						} `json:"windows"`
					}
					require.Equal(t, http.StatusOK, get(inst.addr, "/stores/hourly/keys/"+url.PathEscape(k)+"/windows?from=0", &ans), last)
					require.Len(t, ans.Windows, 1, last)
					require.Equal(t, n, ans.Windows[0].Value, last)
					require.Equal(t, time.Hour.Milliseconds(), ans.Windows[0].End-ans.Windows[0].Start)
				}
			}
			// All instances agree where each key lives.
			hosts := map[string]int{}
			for k := range want {
				var first string
				for i, inst := range insts {
					md, err := stream.QueryMetadataForKey(inst.app, "counts", k, stream.String())
					require.NoError(t, err)
					if i == 0 {
						first = md.Active
					}
					require.Equal(t, first, md.Active, "key %s", k)
				}
				hosts[first]++
			}
			// (The count's tasks are those of the second sub-topology: an
			// instance may run only tasks of the first.) With keys on two
			// or more instances, every instance answered for keys it does
			// not host.
			require.GreaterOrEqual(t, len(hosts), 2, "keys spread over instances: %v", hosts)
			// A range through any instance gathers every instance's part.
			for _, inst := range insts {
				var ans struct {
					Entries []struct {
						Key   string `json:"key"`
						Value int64  `json:"value"`
					} `json:"entries"`
				}
				require.Equal(t, http.StatusOK, get(inst.addr, "/stores/counts/range", &ans))
				got := map[string]int64{}
				for _, e := range ans.Entries {
					got[e.Key] = e.Value
				}
				require.Equal(t, want, got)
			}
			// Errors: an unknown store, a missing key.
			require.Equal(t, http.StatusNotFound, get(insts[0].addr, "/stores/nope/keys/a", nil))
			require.Equal(t, http.StatusNotFound, get(insts[1].addr, "/stores/counts/keys/"+strconv.Quote("absent"), nil))
		})
	}
}

// assertEventually polls cond every 200 ms until it holds or timeout passes.
func assertEventually(timeout time.Duration, cond func() bool) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// Serving interactive queries for every key from every instance: each
// instance advertises the address its QueryHandler listens on, and answers
// keys it does not host by asking the instance that does.
func ExampleQueryHandler() {
	b := stream.NewBuilder()
	clicks := stream.Source(b, "clicks", stream.String(), stream.String())
	stream.Count(stream.GroupBy(clicks, func(_, page string) string { return page },
		stream.Grouped[string, string]{Name: "by-page", KeySerde: stream.String(), ValueSerde: stream.String()}),
		stream.Materialized[string, int64]{StoreName: "page-views"})
	top, err := b.Build()
	if err != nil {
		panic(err)
	}
	const listen = "127.0.0.1:8090" // this instance's address, as the others reach it
	app, err := stream.NewApp(top, stream.Brokers("127.0.0.1:9092"), stream.ApplicationID("page-views"),
		stream.ApplicationServer(listen))
	if err != nil {
		panic(err)
	}
	h := stream.NewQueryHandler(app)
	stream.ServeKeyValueStore[string, int64](h, "page-views", stream.String(), func(s string) (string, error) { return s, nil })
	go func() { _ = http.ListenAndServe(listen, h) }()
	// GET http://127.0.0.1:8090/stores/page-views/keys/%2Fhome -> {"key":"/home","value":42}
	_ = app.Run(context.Background())
}
