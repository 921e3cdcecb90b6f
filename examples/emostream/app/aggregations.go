package app

import (
	"flag"
	"fmt"
	"strings"

	"github.com/emostream/emostream/examples/emostream/aggregation"
	"github.com/emostream/emostream/examples/emostream/dashboard"
)

// aggregationsFlag defines --aggregations.
func aggregationsFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.aggregations, "aggregations", aggregation.Count,
		"comma-separated `list` of what the aggregator computes and the dashboard shows: count (topic2, required), "+
			"distinct-users, top3, per-region (joins --users-topic), or all; each one beyond count writes <output-topic>-<name> (e.g. topic2-top3). "+
			"Every aggregator of a group must have the same list")
	fs.StringVar(&c.usersTopic, "users-topic", "users",
		"aggregator: the compacted `topic` per-region reads as a table (key user_id, value the user's region; created if missing)")
}

// selectAggregations resolves --aggregations against the built-in
// aggregations and those of Options.Aggregations, and checks their output
// topics' names.
func (c *config) selectAggregations(extra []aggregation.Aggregation) error {
	if !topicName.MatchString(c.usersTopic) {
		return fmt.Errorf("--users-topic %q is not a valid Kafka topic name", c.usersTopic)
	}
	available := append(append(aggregation.Builtin(), aggregation.PerRegion(c.usersTopic)), extra...)
	sel, err := aggregation.Select(c.aggregations, available)
	if err != nil {
		return fmt.Errorf("--aggregations: %s", strings.TrimPrefix(err.Error(), aggregation.ErrInvalid.Error()+": "))
	}
	for _, a := range sel {
		topic := aggregation.Topic(c.outputTopic, a.Name())
		switch {
		case !topicName.MatchString(topic):
			return fmt.Errorf("--aggregations: %s's output topic %q is not a valid Kafka topic name", a.Name(), topic)
		case topic == c.inputTopic || topic == c.dlqTopic:
			return fmt.Errorf("--aggregations: %s's output topic %q is also --input-topic or --dlq-topic", a.Name(), topic)
		}
	}
	c.selected = sel
	return nil
}

// aggregationTopics are the output topics of the selected aggregations
// beyond the count.
func (c *config) aggregationTopics() []string {
	var out []string
	for _, a := range c.selected {
		out = append(out, aggregation.Topic(c.outputTopic, a.Name()))
	}
	return out
}

// tableTopics are the topics the selected aggregations read as tables
// (aggregation.TableTopics), created compacted.
func (c *config) tableTopics() []string {
	var out []string
	for _, a := range c.selected {
		if tt, ok := a.(aggregation.TableTopics); ok {
			out = append(out, tt.TableTopics()...)
		}
	}
	return out
}

// appTopics are the topics `run`, `aggregate` and `broker` create: input,
// output, dead letters and the extra aggregations' outputs.
func (c *config) appTopics() []string {
	return append([]string{c.inputTopic, c.outputTopic, c.dlqTopic}, c.aggregationTopics()...)
}

// panels are the dashboard panels of the selected aggregations.
func (c *config) panels() []dashboard.Panel {
	var out []dashboard.Panel
	for _, a := range c.selected {
		out = append(out, dashboard.Panel{Name: a.Name(), Title: a.Title(), Topic: aggregation.Topic(c.outputTopic, a.Name())})
	}
	return out
}
