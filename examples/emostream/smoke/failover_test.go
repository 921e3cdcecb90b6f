package main

import (
	"testing"
	"time"
)

func TestMeasureTrial(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	all := []arrival{
		{key: pair{1, "a"}, due: at(-1), recv: at(-1.5)}, // before the event: not judged
		{key: pair{2, "a"}, due: at(1), recv: at(0.5)},   // on time
		{key: pair{3, "a"}, due: at(2), recv: at(6.5)},   // late by 4.5 s
		{key: pair{3, "b"}, due: at(2), recv: at(7)},     // late by 5 s: the last late one
		{key: pair{2, "a"}, due: at(1), recv: at(7.1)},   // a repeat: counted, not judged late
		{key: pair{4, "a"}, due: at(8), recv: at(7.5)},   // on time again
		{key: pair{5, "a"}, due: at(30), recv: at(40)},   // after the trial: not judged
	}
	f := measureTrial(all, t0, at(10))
	if f.Results != 5 || f.Late != 2 || f.Repeats != 1 {
		t.Fatalf("results %d late %d repeats %d, want 5, 2, 1", f.Results, f.Late, f.Repeats)
	}
	if f.Recovery != 7*time.Second || f.MaxLate != 5*time.Second {
		t.Fatalf("recovery %v max late %v, want 7s and 5s", f.Recovery, f.MaxLate)
	}
	s := summarize(kindKill, []trialFigures{{Recovery: 7 * time.Second}, {Recovery: 5 * time.Second}, {Recovery: 6 * time.Second}, {Recovery: 9 * time.Second}})
	if s.MedianSeconds != 6.5 || s.MaxSeconds != 9 || s.Trials != 4 {
		t.Fatalf("summary %+v", s)
	}
}

func TestFailoverDefaults(t *testing.T) {
	c, err := ParseFlags([]string{"-scenario", "failover"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.KafkaPort != failoverKafkaPort || c.KafkaStateDir != failoverKafkaStateDir || c.Grace != 500*time.Millisecond || c.Trials != 5 || c.Rate != rebalanceRate {
		t.Fatalf("defaults: port %d dir %s grace %v trials %d rate %v", c.KafkaPort, c.KafkaStateDir, c.Grace, c.Trials, c.Rate)
	}
}
