package stream

import "github.com/IBM/sarama"

// groupHandler is the sarama.ConsumerGroupHandler of an App. It is a
// separate type so that the consumer group's callbacks are not part of
// App's API: only the runtime calls them.
type groupHandler App

// Setup builds the tasks of the new assignment.
func (h *groupHandler) Setup(sess sarama.ConsumerGroupSession) error { return (*App)(h).setup(sess) }

// Cleanup commits and closes the session's tasks.
func (h *groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	return (*App)(h).cleanup(sess)
}

// ConsumeClaim processes one partition of one topic.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	return (*App)(h).consumeClaim(sess, claim)
}
