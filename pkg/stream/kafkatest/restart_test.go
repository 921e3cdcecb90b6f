package kafkatest_test

import (
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream/kafkatest"
)

// TestRestartableBroker: Stop closes the address, Start serves it again,
// empty (the topic created before is gone).
func TestRestartableBroker(t *testing.T) {
	r := kafkatest.StartRestartable(t)
	brokers := r.Addrs()
	require.Len(t, brokers, 1)
	topic := kafkatest.UniqueName(t, "restart")
	kafkatest.CreateTopic(t, brokers, topic, 1)
	kafkatest.ProduceStrings(t, brokers, topic, []kafkatest.KV{{Key: "k", Value: "v"}})

	r.Stop()
	_, err := net.DialTimeout("tcp", brokers[0], time.Second)
	require.Error(t, err, "nothing listens after Stop")

	r.Start()
	require.Equal(t, brokers, r.Addrs())
	client, err := sarama.NewClient(brokers, kafkatest.SaramaConfig())
	require.NoError(t, err)
	defer client.Close()
	topics, err := client.Topics()
	require.NoError(t, err)
	require.NotContains(t, topics, topic, "the restarted broker is empty")
	kafkatest.CreateTopic(t, brokers, topic, 1)
}
