package stream

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKGOOptions checks which sarama configurations the kgo writer takes
// over, and that the others fall back to sarama's producer with a reason.
func TestKGOOptions(t *testing.T) {
	base := func() *sarama.Config {
		a := &App{cfg: defaultConfig()}
		a.cfg.appID = "app"
		return a.saramaConfig()
	}
	tests := []struct {
		name    string
		adjust  func(*sarama.Config)
		fallsTo string // "" when kgo writes
	}{
		{name: "defaults"},
		{name: "TLS", adjust: func(c *sarama.Config) { c.Net.TLS.Enable = true }},
		{name: "SASL PLAIN", adjust: func(c *sarama.Config) {
			c.Net.SASL.Enable, c.Net.SASL.Mechanism, c.Net.SASL.User, c.Net.SASL.Password = true, sarama.SASLTypePlaintext, "u", "p"
		}},
		{name: "SASL SCRAM-SHA-512", adjust: func(c *sarama.Config) {
			c.Net.SASL.Enable, c.Net.SASL.Mechanism = true, sarama.SASLTypeSCRAMSHA512
		}},
		{name: "zstd", adjust: func(c *sarama.Config) { c.Producer.Compression = sarama.CompressionZSTD }},
		{name: "SASL OAUTHBEARER", adjust: func(c *sarama.Config) {
			c.Net.SASL.Enable, c.Net.SASL.Mechanism = true, sarama.SASLTypeOAuth
		}, fallsTo: "SASL mechanism OAUTHBEARER"},
		{name: "GSSAPI", adjust: func(c *sarama.Config) {
			c.Net.SASL.Enable, c.Net.SASL.Mechanism = true, sarama.SASLTypeGSSAPI
		}, fallsTo: "SASL mechanism GSSAPI"},
		{name: "proxy", adjust: func(c *sarama.Config) { c.Net.Proxy.Enable = true }, fallsTo: "Net.Proxy or Net.LocalAddr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := base()
			if tc.adjust != nil {
				tc.adjust(sc)
			}
			opts, why := kgoOptions([]string{"127.0.0.1:1"}, sc)
			require.Equal(t, tc.fallsTo, why)
			if why != "" {
				require.Nil(t, opts)
				return
			}
			cl, err := kgo.NewClient(opts...)
			require.NoError(t, err)
			defer cl.Close()
			require.Equal(t, []any{"app"}, cl.OptValues(kgo.ClientID)[:1])
			// The guarantees: acks from every in-sync replica, idempotent,
			// the runtime's partition, sarama's retry budget.
			require.Equal(t, kgo.AllISRAcks(), cl.OptValue(kgo.RequiredAcks))
			require.Equal(t, false, cl.OptValue(kgo.DisableIdempotentWrite))
			require.EqualValues(t, sc.Producer.Retry.Max, cl.OptValue(kgo.RecordRetries))
			require.Equal(t, sc.Producer.Flush.Frequency, cl.OptValue(kgo.ProducerLinger))
			// A retry after a partition error waits for a metadata refresh:
			// no longer than the retry backoff (kgo's default is 5 s).
			require.Equal(t, max(sc.Producer.Retry.Backoff, 100*time.Millisecond), cl.OptValue(kgo.MetadataMinAge))
			// sarama's compression, none by default (kgo's default is snappy).
			want := kgo.NoCompression()
			if sc.Producer.Compression == sarama.CompressionZSTD {
				want = kgo.ZstdCompression()
			}
			require.Equal(t, []kgo.CompressionCodec{want}, cl.OptValue(kgo.ProducerBatchCompression))
			// No delivery timeout: kgo counts it from the record's timestamp.
			require.EqualValues(t, 0, cl.OptValue(kgo.RecordDeliveryTimeout))
		})
	}
}
