package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/emostream/emostream/examples/emostream/wire"
)

// The rebalance scenario (-scenario rebalance, `make smoke-rebalance`)
// checks the contract's "emitted once, when the window closes" across
// consumer-group rebalances: graceful scale-out and scale-in must not write
// any topic2 result twice; after a SIGKILL a result may be written again,
// but only identical to the first write.
//
// Under a steady load (-rate, default 400 emojis/s) it runs, each layout
// for -phase (default 10 s) once the group is stable:
//
//  1. one aggregator (agg-1);
//  2. a second one starts (agg-2): scale-out to 2;
//  3. agg-1 gets SIGTERM: graceful scale-in to 1;
//  4. a third one starts (agg-3): 2 again.
//
// Then the checkpoint: once the group's lag is below three seconds of input
// and a phase has passed since the last rebalance (every window it touched
// has closed), topic2 is read: it must hold no repeated result (a second
// record for the same (window_start, emoji_type)) so far.
//
//  5. agg-2, the longest-running one, gets SIGKILL and is restarted
//     -restart-delay (1 s) later, so it comes back as a new member (after
//     the group has dropped the dead one, which takes up to the session
//     timeout: 6 s, EmoStream's default --session-timeout). The load runs
//     for one more phase.
//
// Then the load stops, every window closes, the processes stop (SIGTERM)
// and the topics are verified exactly as the faults scenario does (see
// [Verify]). The repeats written after the checkpoint must all be identical
// to the first write of their result (key, value bytes, record timestamp).

// RepeatStats counts the topic2 records of a run and the repeated results
// among them, before and after a checkpoint.
type RepeatStats struct {
	// Records is the number of topic2 records; Cells the distinct
	// (window_start, emoji_type) results they hold.
	Records, Cells int
	// Before counts the repeats among the records read at the checkpoint
	// (the graceful rebalances); BeforeIdentical those identical to their
	// first write.
	Before, BeforeIdentical int
	// After counts the repeats among the records written after the
	// checkpoint (the SIGKILL and restart); AfterIdentical those identical
	// to their first write.
	After, AfterIdentical int
	// Examples describe a few repeats.
	Examples []string
}

// String gives the figures on one line.
func (s RepeatStats) String() string {
	return fmt.Sprintf("topic2 %d records for %d results; repeats: %d after the graceful rebalances 1→2→1→2 (want 0; %d identical), %d after the SIGKILL (%d identical, %d not)",
		s.Records, s.Cells, s.Before, s.BeforeIdentical, s.After, s.AfterIdentical, s.After-s.AfterIdentical)
}

// recPos locates a record in its topic.
type recPos struct {
	partition int32
	offset    int64
}

// CountRepeats finds the repeated results among topic2 records: a repeat is
// a record for a (window_start, emoji_type) that a record at a lower offset
// already holds (the key is the emoji, so every record of a result is in
// one partition). before tells which records belong to the first phase. A
// repeat is identical when its key, value bytes and record timestamp equal
// those of the result's first record. Undecodable records are skipped
// (Verify reports them).
func CountRepeats(recs []Record, before func(Record) bool) RepeatStats {
	sorted := append([]Record(nil), recs...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Partition != sorted[j].Partition {
			return sorted[i].Partition < sorted[j].Partition
		}
		return sorted[i].Offset < sorted[j].Offset
	})
	s := RepeatStats{Records: len(recs)}
	first := map[pair]Record{}
	for _, rec := range sorted {
		res, err := wire.DecodeResult(rec.Value)
		if err != nil {
			continue
		}
		k := pair{res.WindowStart, res.EmojiType}
		f, seen := first[k]
		if !seen {
			first[k] = rec
			continue
		}
		same := bytes.Equal(rec.Key, f.Key) && bytes.Equal(rec.Value, f.Value) && rec.Timestamp == f.Timestamp
		phase := "after the SIGKILL"
		if before(rec) {
			phase = "graceful"
			s.Before++
			if same {
				s.BeforeIdentical++
			}
		} else {
			s.After++
			if same {
				s.AfterIdentical++
			}
		}
		if len(s.Examples) < maxPerKind {
			how := "identical"
			if !same {
				how = fmt.Sprintf("DIFFERENT: value %s timestamp %d, first %s timestamp %d", rec.Value, rec.Timestamp, f.Value, f.Timestamp)
			}
			s.Examples = append(s.Examples, fmt.Sprintf("%s: window %s %s at partition %d offset %d, first at offset %d, %s",
				phase, fmtMS(k.start), k.emoji, rec.Partition, rec.Offset, f.Offset, how))
		}
	}
	s.Cells = len(first)
	return s
}

// runRebalance is the rebalance scenario; see the comment at the top of
// this file.
func (d *driver) runRebalance(ctx context.Context) (*Report, error) {
	c := d.cfg
	const groupTimeout = 90 * time.Second
	agg1, err := d.startAggregator("agg-1")
	if err != nil {
		return nil, err
	}
	if err := waitHealthy(ctx, d.url+"/healthz", 60*time.Second); err != nil {
		return nil, fmt.Errorf("API not healthy: %w (see %s)", err, d.api.LogPath)
	}
	d.logf("API healthy on %s; waiting for agg-1 to form group %s", d.url, d.group)
	if d.waitMembers(ctx, 1, nil, groupTimeout) == nil && ctx.Err() == nil {
		d.problem("group %s did not become stable with agg-1 within %v", d.group, groupTimeout)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	obs, err := NewObserver(d.brokers)
	if err != nil {
		return nil, err
	}
	defer obs.Close()

	gen := d.newGenerator(c.Emojis)
	stopLoad := startLoad(ctx, gen)
	defer stopLoad()

	phase := func(n int, what string) bool {
		d.logf("phase %d/5: %s; running for %v", n, what, c.Phase)
		return sleep(ctx, c.Phase)
	}
	wantMembers := func(n int, old map[string]bool, what string) map[string]bool {
		m := d.waitMembers(ctx, n, old, groupTimeout)
		if m == nil && ctx.Err() == nil {
			d.problem("group %s did not become stable with %d members within %v after %s", d.group, n, groupTimeout, what)
		}
		return m
	}

	// 1: one aggregator.
	d.logf("load started: %.0f emojis/s", c.Rate)
	if !phase(1, "1 aggregator (agg-1)") {
		return nil, ctx.Err()
	}

	// 2: scale-out to two.
	agg2, err := d.startAggregator("agg-2")
	if err != nil {
		return nil, err
	}
	d.logf("started agg-2 (pid %d): scale-out to 2", agg2.Pid())
	wantMembers(2, nil, "starting agg-2")
	if !phase(2, "2 aggregators (agg-1, agg-2)") {
		return nil, ctx.Err()
	}

	// 3: graceful scale-in to one.
	d.logf("SIGTERM agg-1 (pid %d): scale-in to 1", agg1.Pid())
	d.mu.Lock()
	d.stopped[agg1] = true
	d.mu.Unlock()
	if err := agg1.Stop(60 * time.Second); err != nil {
		d.problem("stopping agg-1: %v", err)
	}
	wantMembers(1, nil, "stopping agg-1")
	if !phase(3, "1 aggregator (agg-2)") {
		return nil, ctx.Err()
	}

	// 4: two again.
	agg3, err := d.startAggregator("agg-3")
	if err != nil {
		return nil, err
	}
	d.logf("started agg-3 (pid %d): scale-out to 2", agg3.Pid())
	members := wantMembers(2, nil, "starting agg-3")
	if !phase(4, "2 aggregators (agg-2, agg-3)") {
		return nil, ctx.Err()
	}

	// Checkpoint: no repeats so far.
	seen, err := d.checkpoint(ctx, obs)
	if err != nil {
		return nil, err
	}

	// 5: SIGKILL and restart.
	pid := agg2.Pid()
	agg2.Kill()
	d.logf("SIGKILL agg-2 (pid %d); restart in %v", pid, c.RestartDelay)
	if !sleep(ctx, c.RestartDelay) {
		return nil, ctx.Err()
	}
	if err := agg2.Start(); err != nil {
		return nil, fmt.Errorf("restarting agg-2: %w", err)
	}
	d.logf("restarted agg-2 (pid %d); the group drops the dead member after the session timeout", agg2.Pid())
	wantMembers(2, members, "the SIGKILL and restart of agg-2")
	if !phase(5, "2 aggregators (agg-2 restarted, agg-3)") {
		return nil, ctx.Err()
	}

	gs := stopLoad()
	d.mu.Lock()
	d.sent = gs.Acked + gs.Failed + gs.Unsent
	d.mu.Unlock()
	d.logGenerator(gen, gs)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r, data, err := d.finish(ctx, obs, gen, gs)
	if err != nil {
		return nil, err
	}

	st := CountRepeats(data.Topic2, func(rec Record) bool { return seen[recPos{rec.Partition, rec.Offset}] })
	d.mu.Lock()
	d.rebal = &st
	d.mu.Unlock()
	for _, ex := range st.Examples {
		d.logf("  repeat %s", ex)
	}
	if st.Before > 0 {
		d.problem("%d topic2 results were written again during the graceful rebalances (scale 1→2→1→2, no crash; %d of them identical); the contract emits a result once", st.Before, st.BeforeIdentical)
	}
	if n := st.After - st.AfterIdentical; n > 0 {
		d.problem("%d topic2 results written again after the SIGKILL differ from their first write (key, value bytes or record timestamp)", n)
	}
	return r, nil
}

// checkpoint waits until the aggregators have caught up with the load,
// reads topic2 and counts its repeats so far (logged; runRebalance judges
// them at the end, from the final read). It returns the positions of the
// records it read: the records of the graceful phases.
func (d *driver) checkpoint(ctx context.Context, obs *Observer) (map[recPos]bool, error) {
	c := d.cfg
	const timeout = 60 * time.Second
	maxLag := int64(c.Rate * 3)
	start := time.Now()
	for {
		lag, err := obs.Lag(d.group, d.in)
		if err == nil && lag <= maxLag {
			d.logf("checkpoint: lag %d (at most %d: 3 s of input) after %v", lag, maxLag, time.Since(start).Round(100*time.Millisecond))
			break
		}
		if time.Since(start) > timeout {
			d.problem("checkpoint: the aggregators did not catch up within %v (lag %d, error %v)", timeout, lag, err)
			break
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	recs, err := obs.ReadAll(ctx, d.outT, 3*time.Second, false)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: reading %s: %w", d.outT, err)
	}
	seen := make(map[recPos]bool, len(recs))
	for _, r := range recs {
		seen[recPos{r.Partition, r.Offset}] = true
	}
	st := CountRepeats(recs, func(Record) bool { return true })
	d.logf("checkpoint: %s has %d records for %d results, %d of them repeats (%d identical) after the graceful rebalances; want 0",
		d.outT, st.Records, st.Cells, st.Before, st.BeforeIdentical)
	return seen, nil
}
