package stream_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
	"github.com/stretchr/testify/require"
)

// TestIntegrationRestoreRunsIntoPebble: a persistent table of 12,000 keys,
// some overwritten and some deleted (tombstones in its changelog), is
// restored into an empty state directory in runs of 2,500 records (so the
// restore ingests several tables per partition, and writes its last,
// shorter run as a batch), and then holds exactly what the first instance
// held: every key, every latest value, no deleted key.
func TestIntegrationRestoreRunsIntoPebble(t *testing.T) {
	defer stream.SetRestoreRun(2500, 1000)()
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			in := kafkatest.UniqueName(t, "in")
			kafkatest.CreateTopic(t, brokers, in, 2)
			b := stream.NewBuilder()
			stream.TableSource(b, in, stream.String(), stream.String(),
				stream.Materialized[string, string]{StoreName: "tbl", Options: []stream.StoreOpt{stream.Persistent()}})
			top, err := b.Build()
			require.NoError(t, err)

			const keys = 12_000
			want := map[string]string{}
			var recs []kafkatest.KV
			for i := range keys {
				k, v := fmt.Sprintf("key-%05d", i), fmt.Sprintf("v1-%d", i)
				recs = append(recs, kafkatest.KV{Key: k, Value: v})
				want[k] = v
			}
			for i := 0; i < keys; i += 3 { // every third key rewritten
				k, v := fmt.Sprintf("key-%05d", i), fmt.Sprintf("v2-%d", i)
				recs = append(recs, kafkatest.KV{Key: k, Value: v})
				want[k] = v
			}
			for i := 1; i < keys; i += 5 { // every fifth key deleted
				k := fmt.Sprintf("key-%05d", i)
				recs = append(recs, kafkatest.KV{Key: k, Tombstone: true})
				delete(want, k)
			}
			kafkatest.ProduceStrings(t, brokers, in, recs)

			appID := kafkatest.UniqueName(t, "app")
			storeOf := func(app *stream.App) map[string]string {
				got := map[string]string{}
				it, err := stream.QueryStore[string, string](app, "tbl", stream.String()).All()
				if err != nil {
					return nil
				}
				defer it.Close()
				for it.Next() {
					got[it.Key()] = it.Value()
				}
				if it.Err() != nil {
					return nil
				}
				return got
			}
			app, stop := startApp(t, top, stream.Brokers(brokers...), stream.ApplicationID(appID), stream.StateDir(t.TempDir()))
			require.Eventually(t, func() bool { return len(storeOf(app)) == len(want) }, 90*time.Second, 200*time.Millisecond)
			require.Equal(t, want, storeOf(app))
			require.NoError(t, stop())

			// The local state is lost: a new state directory.
			app, stop = startApp(t, top, stream.Brokers(brokers...), stream.ApplicationID(appID), stream.StateDir(t.TempDir()))
			require.Eventually(t, func() bool { return app.State() == stream.StateRunning && storeOf(app) != nil }, 90*time.Second, 100*time.Millisecond)
			require.Equal(t, want, storeOf(app), "the restored store")
			// The state came from the changelog (the input was committed,
			// nothing was reprocessed): at least one record per key, so
			// several runs per partition.
			require.GreaterOrEqual(t, counterSum(t, app, "stream_restored_records_total"), float64(keys))
			require.NoError(t, stop())
		})
	}
}
