package stream_test

import (
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestRecordAtTellsMarkersFromRecords: the stall check's probe, against
// each backend, tells the offsets a consumer is handed (a plain record, a
// committed transaction's record; an aborted one's for a read_uncommitted
// consumer) from those it never is (a commit or abort marker; an aborted
// record for a read_committed consumer).
func TestRecordAtTellsMarkersFromRecords(t *testing.T) {
	for _, be := range kafkatest.Backends() {
		t.Run(be.Name, func(t *testing.T) {
			brokers := be.Brokers(t)
			committed, aborted, plain := kafkatest.UniqueName(t, "committed"), kafkatest.UniqueName(t, "aborted"), kafkatest.UniqueName(t, "plain")
			for _, topic := range []string{committed, aborted, plain} {
				kafkatest.CreateTopic(t, brokers, topic, 1)
			}
			kafkatest.ProduceStrings(t, brokers, plain, []kafkatest.KV{{Key: "k", Value: "v"}})

			cfg := kafkatest.SaramaConfig()
			cfg.Producer.Transaction.ID = kafkatest.UniqueName(t, "txn")
			txn, err := sarama.NewSyncProducer(brokers, cfg)
			require.NoError(t, err)
			defer txn.Close()
			for _, c := range []struct {
				topic  string
				commit bool
			}{{committed, true}, {aborted, false}} {
				require.NoError(t, txn.BeginTxn())
				_, _, err = txn.SendMessage(&sarama.ProducerMessage{Topic: c.topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("v")})
				require.NoError(t, err)
				if c.commit {
					require.NoError(t, txn.CommitTxn())
				} else {
					require.NoError(t, txn.AbortTxn())
				}
			}

			client, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
			require.NoError(t, err)
			defer client.Close()
			for _, c := range []struct {
				topic         string
				off           int64
				readCommitted bool
				want          bool
			}{
				{plain, 0, false, true},
				{plain, 0, true, true},
				{plain, 1, false, false}, // the end: nothing
				{committed, 0, true, true},
				{committed, 1, false, false}, // the commit marker
				{committed, 1, true, false},
				{aborted, 0, false, true}, // read_uncommitted consumers get aborted records
				{aborted, 0, true, false},
				{aborted, 1, false, false}, // the abort marker
			} {
				got, err := stream.RecordAt(client, c.topic, 0, c.off, c.readCommitted)
				require.NoError(t, err, "%+v", c)
				require.Equal(t, c.want, got, "%s offset %d, read_committed %v", c.topic, c.off, c.readCommitted)
			}
		})
	}
}
