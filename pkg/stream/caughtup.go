package stream

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/emostream/emostream/pkg/stream/internal/stacks"
)

// Caught up: whether a task has processed everything its input partitions
// held, and as of when (CaughtUp, InputCompleteAt). Windows close by the
// wall clock only as of that time, so the answer must never be "yes, as of
// now" while records that are already in Kafka wait unfetched.
//
// A claim's high watermark (sarama's, from the last fetch response) is not
// enough for that: while fetches stall — a broker that is slow or
// restarting, a process that was paused for seconds — it stays at the value
// of the last response, the task reaches it, and the wall clock would close
// windows whose records are still in Kafka. So the runtime also asks each
// partition's leader for its high watermark (ListOffsets) every
// hwmRefreshInterval, and a task is caught up only
//
//   - with a fresh answer: one sent less than hwmFreshness ago, and
//   - as of the time that request was sent: every record written before it
//     is below the high watermark it returned.
//
// Requests to a broker travel on the connection its fetches use, and answers
// come back in order, so an answer means the fetches sent before it were
// answered too; stalled fetches hold the answers back, the last fresh one
// ages, and the task is not caught up until it has processed what the next
// answer reports.

const (
	// hwmRefreshInterval is how often the high watermarks of the claimed
	// partitions are asked for.
	hwmRefreshInterval = 100 * time.Millisecond
	// hwmFreshness is how old the last answer may be for a task to count as
	// caught up.
	hwmFreshness = time.Second
	// quietGap is how many offsets below the high watermark a silent
	// partition may stop and still count as caught up (see caughtUp).
	quietGap = 64
)

type claimState struct {
	claim sarama.ConsumerGroupClaim
	last  atomic.Int64 // unix ns of the last message (or of the claim's start)
	// next is the offset after the last record processed (the start until
	// one is); stalled is the unix ns at which checkStalls reported the
	// partition stalled, 0 while it is not.
	next, stalled atomic.Int64
	// probing: probeGap is asking what the one offset below the high
	// watermark holds; probed is 1 + the next offset its last answer found
	// a transaction marker (or nothing deliverable) at, 0 if none.
	probing atomic.Bool
	probed  atomic.Int64
	// start is the offset consumption started at: the claim's initial
	// offset, with sarama's OffsetOldest sentinel resolved; -1 if unknown.
	start int64
	// backlogEnd: the records below it were in Kafka when the claim started
	// (its high watermark then), a backlog judged by stream time; the
	// records from it on arrived while the task consumed. math.MaxInt64
	// when unknown.
	backlogEnd int64
	// reached: the partition's end was reached at least once in this claim
	// (it started at its end — say empty — or processing caught up with
	// the high watermark). Records arriving after that are the live tail.
	reached atomic.Bool
	// fresh are the last ListOffsets answers, oldest first (see
	// refreshHighWatermarks).
	fresh struct {
		sync.Mutex
		answers []hwmAnswer // at most hwmAnswers
		since   time.Time   // asOf of the first answer with the last hwm
	}
}

// hwmAnswer is a partition's high watermark as of when it was asked for.
type hwmAnswer struct {
	hwm  int64
	asOf time.Time // when the request was sent
}

// hwmAnswers is how many answers a claim keeps (6.4 s of them).
const hwmAnswers = 64

// newClaimState resolves where claim starts and whether it starts with a
// backlog.
func (a *App) newClaimState(claim sarama.ConsumerGroupClaim) *claimState {
	asOf := time.Now()
	cs := &claimState{claim: claim, start: claim.InitialOffset(), backlogEnd: math.MaxInt64}
	fresh := cs.start < 0
	if fresh {
		// A sentinel (no committed offset): resolve where consumption began.
		if off, err := a.client.GetOffset(claim.Topic(), claim.Partition(), cs.start); err == nil {
			cs.start = off
		} else {
			cs.start = -1
		}
	}
	// sarama sets the high watermark from a ListOffsets when it starts the
	// claim (0 would mean unknown only if the start were above it).
	if hwm := claim.HighWaterMarkOffset(); cs.start >= 0 && !(hwm == 0 && cs.start > 0) {
		cs.backlogEnd = hwm
		if cs.start >= hwm {
			// Nothing to catch up with: every record is the live tail.
			cs.backlogEnd = cs.start
			cs.reached.Store(true)
		}
		// sarama's ListOffsets, sent just before the claim reached the
		// handler, is the first answer (taken as of now; the refreshes
		// replace it within hwmRefreshInterval).
		cs.fresh.answers, cs.fresh.since = []hwmAnswer{{hwm, asOf}}, asOf
	}
	cs.last.Store(time.Now().UnixNano())
	cs.next.Store(cs.start)
	return cs
}

// observe records a ListOffsets answer sent at asOf.
func (cs *claimState) observe(hwm int64, asOf time.Time) {
	cs.fresh.Lock()
	defer cs.fresh.Unlock()
	a := cs.fresh.answers
	if n := len(a); n > 0 {
		if !asOf.After(a[n-1].asOf) {
			return // an older request answered late
		}
		if hwm != a[n-1].hwm {
			cs.fresh.since = asOf
		}
	} else {
		cs.fresh.since = asOf
	}
	if len(a) == hwmAnswers {
		a = append(a[:0], a[1:]...)
	}
	cs.fresh.answers = append(a, hwmAnswer{hwm, asOf})
}

// freshHWM returns the last answer, when its high watermark was first
// reported, and the time of the latest answer whose high watermark next
// had reached (zero if none): everything written before then has been
// processed.
func (cs *claimState) freshHWM(next int64) (last hwmAnswer, since, reachedAsOf time.Time) {
	cs.fresh.Lock()
	defer cs.fresh.Unlock()
	a := cs.fresh.answers
	if len(a) == 0 {
		return hwmAnswer{}, time.Time{}, time.Time{}
	}
	for i := len(a) - 1; i >= 0; i-- {
		if next >= 0 && a[i].hwm <= next {
			reachedAsOf = a[i].asOf
			break
		}
	}
	return a[len(a)-1], cs.fresh.since, reachedAsOf
}

// caughtUp: every source partition of t is being consumed, a fresh high
// watermark is known for it (see the top of this file), and its next offset
// to process has reached that high watermark. It also returns the time as
// of which every input record is processed: when the latest answer whose
// high watermark the task has reached was asked for (the oldest such time
// over the task's partitions; zero when there is none). The caller holds
// t.mu.
//
// A record being processed that arrived while the task was consuming (not
// part of the backlog the claim started with) counts as processed, so the
// last record of the tail — the first record of an empty partition, for
// one — is judged like the records after it. A partition whose end was
// reached once in this claim (it started at its end, or processing caught
// up) stays caught up while at most quietGap offsets lie ahead: records
// written in one burst to a live partition are the tail, not a backlog. The
// records of a backlog — in Kafka when the claim started, as after a
// restart or a failover — are judged by stream time, up to the last one.
//
// Transaction markers at a partition's tail are never delivered, so the next
// offset can stay below the high watermark of an idle, transactionally
// written partition: a partition that delivered nothing for a second, with
// an empty buffer and a high watermark that fresh answers have reported
// unchanged for a second (so the fetches after those records were answered
// too), counts as caught up too.
func (a *App) caughtUp(t *task) (bool, time.Time) {
	a.claimMu.Lock()
	defer a.claimMu.Unlock()
	now := time.Now()
	var asOf time.Time
	allAsOf := len(t.sources) > 0
	for topic := range t.sources {
		cs, ok := a.claims[topic][t.id.Partition]
		if !ok {
			return false, time.Time{}
		}
		c := cs.claim
		next, processed := t.position[topic]
		if !processed {
			next = cs.start
		}
		reached := cs.reached.Load()
		if off := t.cur.meta.Offset; t.cur.inRecord && t.cur.meta.Topic == topic && off+1 > next && (reached || off >= cs.backlogEnd) {
			next = off + 1
		}
		last, fSince, reachedAsOf := cs.freshHWM(next)
		fhwm, fAsOf := last.hwm, last.asOf
		if fAsOf.IsZero() || now.Sub(fAsOf) > hwmFreshness {
			return false, time.Time{}
		}
		hwm := max(c.HighWaterMarkOffset(), fhwm)
		// The high watermark reads 0 until known (sarama sets it from a
		// ListOffsets when the claim starts, then from each fetch): unknown
		// unless the starting position is 0 as well.
		atEnd := next >= 0 && !(hwm == 0 && next > 0) && next >= hwm
		if atEnd && !reached {
			cs.reached.Store(true)
		}
		tail := reached && next >= 0 && hwm-next <= quietGap
		// Quiet: nothing buffered or delivered for a second, after at least
		// one fetch (hwm > 0), with at most a few offsets left — transaction
		// markers or an aborted batch — and the high watermark unchanged in
		// the fresh answers of the last second. A larger gap is a backlog
		// the consumer has not fetched yet (a slow first fetch, a broker
		// that is restarting): waiting for it keeps its records from being
		// declared late. Only after 30 s of silence does any gap count.
		silent := now.Sub(time.Unix(0, cs.last.Load()))
		stable := fAsOf.Sub(fSince)
		quiet := len(c.Messages()) == 0 && hwm > 0 && hwm == fhwm &&
			((hwm-next <= quietGap && silent > time.Second && stable >= time.Second) || (silent > 30*time.Second && stable >= 30*time.Second))
		if !atEnd && !tail && !quiet {
			return false, time.Time{}
		}
		// As of when: the last answer the task had reached, or — quiet —
		// the last answer. A burst being worked through (tail) counts as
		// caught up but moves the time no further: its records were
		// written before the answer that reported them.
		topicAsOf := reachedAsOf
		if quiet && !atEnd {
			topicAsOf = fAsOf
		}
		if topicAsOf.IsZero() {
			allAsOf = false
		} else if asOf.IsZero() || topicAsOf.Before(asOf) {
			asOf = topicAsOf
		}
	}
	if !allAsOf {
		asOf = time.Time{}
	}
	return true, asOf
}

// refreshHighWatermarks asks the leaders of the claimed partitions for
// their high watermarks, one ListOffsets request per broker, without
// waiting for the answers; a broker whose last request is unanswered is
// skipped.
func (a *App) refreshHighWatermarks() {
	type tp struct {
		topic     string
		partition int32
	}
	a.claimMu.Lock()
	var parts []tp
	for topic, ps := range a.claims {
		for p := range ps {
			parts = append(parts, tp{topic, p})
		}
	}
	a.claimMu.Unlock()
	byBroker := map[*sarama.Broker][]tp{}
	for _, x := range parts {
		b, err := a.client.Leader(x.topic, x.partition)
		if err != nil {
			continue
		}
		byBroker[b] = append(byBroker[b], x)
	}
	version := a.client.Config().Version
	for b, ps := range byBroker {
		a.hwmMu.Lock()
		if a.hwmInFlight == nil {
			a.hwmInFlight = map[int32]bool{}
		}
		busy := a.hwmInFlight[b.ID()]
		a.hwmInFlight[b.ID()] = true
		a.hwmMu.Unlock()
		if busy {
			continue
		}
		req := sarama.NewOffsetRequest(version)
		for _, x := range ps {
			req.AddBlock(x.topic, x.partition, sarama.OffsetNewest, 1)
		}
		a.life.bg.Go(func() {
			defer func() {
				a.hwmMu.Lock()
				delete(a.hwmInFlight, b.ID())
				a.hwmMu.Unlock()
			}()
			sent := time.Now()
			resp, err := b.GetAvailableOffsets(req)
			if err != nil {
				return
			}
			a.claimMu.Lock()
			defer a.claimMu.Unlock()
			for _, x := range ps {
				block := resp.GetBlock(x.topic, x.partition)
				if block == nil || block.Err != sarama.ErrNoError {
					continue
				}
				if cs := a.claims[x.topic][x.partition]; cs != nil {
					cs.observe(block.Offset, sent)
				}
			}
		})
	}
}

// stallAfter is how long a claimed partition may go without delivering a
// record, while records are known to wait or its leader does not answer,
// before checkStalls logs a warning. A variable for the tests.
var stallAfter = 10 * time.Second

// checkStalls warns, once per episode, about every claimed partition that
// has delivered nothing to its task for stallAfter while
//
//   - records wait: the last fresh ListOffsets answer
//     (refreshHighWatermarks) reports a high watermark at least two offsets
//     past the next record to process, or one past it and that offset holds
//     a record (probeGap), or the claim's buffer holds records its task has
//     not taken (processing is blocked); or
//   - the partition's leader has answered no ListOffsets request for
//     stallAfter: the connection that carries the fetches hangs, or the
//     requests fail.
//
// Without it such a partition is silent: nothing fails, nothing is logged,
// and its records wait. A gap of one offset is ambiguous — a transaction's
// commit marker ends a partition written transactionally and is never
// delivered, while a single record written to an idle partition is one
// offset too — so after stallAfter probeGap fetches that offset once and
// reports a stall only if it holds a record; aborted records at a
// partition's end (never delivered either) are reported, once.
// consumeClaim logs the end of the episode.
func (a *App) checkStalls() {
	now := time.Now()
	a.checkUnclaimed(now)
	a.claimMu.Lock()
	defer a.claimMu.Unlock()
	for topic, ps := range a.claims {
		for p, cs := range ps {
			if cs.stalled.Load() != 0 {
				continue
			}
			last, since, _ := cs.freshHWM(-1)
			next := cs.next.Load()
			buffered := len(cs.claim.Messages())
			lastDelivery := cs.last.Load()
			var reason string
			var from int64 // waiting since (unix ns)
			switch {
			case last.asOf.IsZero() || now.Sub(last.asOf) > hwmFreshness:
				reason = "its leader answers no ListOffsets request"
				from = lastDelivery
				if !last.asOf.IsZero() {
					from = max(from, last.asOf.UnixNano())
				}
			case buffered > 0 || (next >= 0 && last.hwm-next >= 2):
				reason = "records wait below its high watermark"
				// Since the later of the last delivery and the first answer
				// that reported the current high watermark.
				from = max(lastDelivery, since.UnixNano())
			case next >= 0 && last.hwm-next == 1:
				// A commit marker, or a record never delivered: ask.
				if waited := now.Sub(time.Unix(0, max(lastDelivery, since.UnixNano()))); waited >= stallAfter &&
					cs.probed.Load() != next+1 && cs.probing.CompareAndSwap(false, true) {
					a.life.bg.Go(func() { a.probeGap(topic, p, cs, next, last.hwm, waited) })
				}
				continue
			default:
				continue
			}
			waited := now.Sub(time.Unix(0, from))
			if waited < stallAfter {
				continue
			}
			a.reportStall(topic, p, cs, reason, waited, next, last.hwm)
		}
	}
}

// reportStall marks cs stalled and logs why; at debug level it also logs
// the stacks of sarama's and the runtime's goroutines, which say where the
// partition's consumer waits. The caller holds claimMu.
func (a *App) reportStall(topic string, p int32, cs *claimState, reason string, waited time.Duration, next, hwm int64) {
	cs.stalled.Store(time.Now().UnixNano())
	a.cfg.logger.Warn("partition stalled: no record delivered to its task",
		slog.String("application_id", a.cfg.appID), slog.String("topic", topic), slog.Int("partition", int(p)),
		slog.String("reason", reason), slog.Duration("for", waited.Round(time.Second)),
		slog.Int64("next_offset", next), slog.Int64("high_watermark", hwm),
		slog.Int64("fetched_high_watermark", cs.claim.HighWaterMarkOffset()), slog.Int("buffered", len(cs.claim.Messages())))
	if a.cfg.logger.Enabled(context.Background(), slog.LevelDebug) {
		a.cfg.logger.Debug("goroutines of the Kafka client and the runtime at the stall", slog.String("application_id", a.cfg.appID),
			slog.String("topic", topic), slog.Int("partition", int(p)), slog.String("stacks", stacks.Kafka("", 64<<10)))
	}
}

// probeGap asks the leader of topic/partition p what lies at next, the
// offset one below the high watermark hwm that cs's claim has not
// delivered for waited: a transaction's commit or abort marker (or an
// aborted record, for a read_committed consumer) is never delivered, and
// is remembered in cs.probed so it is asked about once; a record that the
// app's consumer (read_committed) would receive is a stall, reported as
// checkStalls reports the others.
func (a *App) probeGap(topic string, p int32, cs *claimState, next, hwm int64, waited time.Duration) {
	defer cs.probing.Store(false)
	// The app's consumer reads committed data only, whatever its guarantee.
	waiting, err := recordAt(a.client, topic, p, next, a.client.Config().Consumer.IsolationLevel == sarama.ReadCommitted)
	if err != nil {
		a.cfg.logger.Debug("asking what waits below the high watermark failed", slog.String("application_id", a.cfg.appID),
			slog.String("topic", topic), slog.Int("partition", int(p)), slog.Int64("offset", next), slog.Any("err", err))
		return
	}
	if !waiting {
		cs.probed.Store(next + 1)
		return
	}
	a.claimMu.Lock()
	defer a.claimMu.Unlock()
	if a.claims[topic][p] != cs || cs.next.Load() != next || cs.stalled.Load() != 0 {
		return // delivered, reported or revoked meanwhile
	}
	a.reportStall(topic, p, cs, "a record waits at its next offset", waited, next, hwm)
}

// recordAt fetches topic/partition p from offset off, once, from its
// leader, and reports whether the answer holds a record at or past off
// that a consumer would deliver: not a control record (a transaction
// marker), and — for a consumer that reads committed data only — not one
// of an aborted transaction. Fetch v4, the oldest Kafka 4 serves.
func recordAt(client sarama.Client, topic string, p int32, off int64, readCommitted bool) (bool, error) {
	b, err := client.Leader(topic, p)
	if err != nil {
		return false, err
	}
	req := &sarama.FetchRequest{Version: 4, MaxWaitTime: 0, MinBytes: 1, MaxBytes: 1 << 20, Isolation: sarama.ReadUncommitted}
	if readCommitted {
		req.Isolation = sarama.ReadCommitted
	}
	req.AddBlock(topic, p, off, 1<<20, -1)
	resp, err := b.Fetch(req)
	if err != nil {
		return false, err
	}
	block := resp.GetBlock(topic, p)
	if block == nil {
		return false, fmt.Errorf("no answer for %s/%d", topic, p)
	}
	if block.Err != sarama.ErrNoError {
		return false, block.Err
	}
	// The producers with an aborted transaction in the answer: their
	// transactional batches are taken as aborted (a later committed one of
	// the same producer is then not seen, which can only miss a warning,
	// never raise a false one).
	aborted := map[int64]bool{}
	for _, t := range block.AbortedTransactions {
		aborted[t.ProducerID] = true
	}
	for _, recs := range block.RecordsSet {
		rb := recs.RecordBatch
		if rb == nil {
			if recs.MsgSet != nil {
				for _, m := range recs.MsgSet.Messages {
					if m.Offset >= off {
						return true, nil
					}
				}
			}
			continue
		}
		if rb.Control || (readCommitted && rb.IsTransactional && aborted[rb.ProducerID]) {
			continue
		}
		for _, r := range rb.Records {
			if rb.FirstOffset+r.OffsetDelta >= off {
				return true, nil
			}
		}
	}
	return false, nil
}

// unclaimedRefreshAfter is how long a partition of the session's tasks may
// wait for its claim, while sarama's metadata says it is not readable,
// before checkUnclaimed refreshes the topic's metadata.
const unclaimedRefreshAfter = 2 * time.Second

// checkUnclaimed warns, once per session and partition, about a partition
// of the session's tasks whose claim has not started stallAfter after the
// assignment: its task can process nothing, and nothing else says so.
// sarama starts a claim only once its client's cached metadata shows the
// partition with a leader, and checks that cache every 5 s without
// refreshing it (its periodic refresh comes every 10 minutes), so a
// partition that was leaderless, or missing from a metadata answer, when
// the session began would wait that long: after unclaimedRefreshAfter the
// runtime refreshes the topic's metadata itself, at most once per
// unclaimedRefreshAfter.
func (a *App) checkUnclaimed(now time.Time) {
	type tp struct {
		topic     string
		partition int32
	}
	a.mu.RLock()
	var parts []tp
	for topic, ps := range a.byClaim {
		for p := range ps {
			parts = append(parts, tp{topic, p})
		}
	}
	a.mu.RUnlock()
	a.claimMu.Lock()
	defer a.claimMu.Unlock()
	if a.assignedAt == 0 {
		return
	}
	refresh := map[string]bool{}
	for _, x := range parts {
		if _, ok := a.claims[x.topic][x.partition]; ok {
			continue
		}
		from, reason := a.assignedAt, "sarama has not started its claim"
		if at, ok := a.starting[x.topic][x.partition]; ok {
			from, reason = at, "its claim is resolving where to start"
		}
		waited := now.Sub(time.Unix(0, from))
		notReadable := a.client.PartitionNotReadable(x.topic, x.partition)
		if notReadable && waited >= unclaimedRefreshAfter && now.Sub(time.Unix(0, a.metaRefreshedAt)) >= unclaimedRefreshAfter {
			refresh[x.topic] = true
		}
		if waited < stallAfter || a.unclaimedWarned[x.topic][x.partition] {
			continue
		}
		if a.unclaimedWarned == nil {
			a.unclaimedWarned = map[string]map[int32]bool{}
		}
		if a.unclaimedWarned[x.topic] == nil {
			a.unclaimedWarned[x.topic] = map[int32]bool{}
		}
		a.unclaimedWarned[x.topic][x.partition] = true
		a.cfg.logger.Warn("partition stalled: its task was assigned but its claim has not started",
			slog.String("application_id", a.cfg.appID), slog.String("topic", x.topic), slog.Int("partition", int(x.partition)),
			slog.String("reason", reason), slog.Duration("for", waited.Round(time.Second)),
			slog.Bool("partition_not_readable", notReadable))
	}
	if len(refresh) > 0 {
		a.metaRefreshedAt = now.UnixNano()
		topics := make([]string, 0, len(refresh))
		for t := range refresh {
			topics = append(topics, t)
		}
		a.life.bg.Go(func() {
			if err := a.client.RefreshMetadata(topics...); err != nil {
				a.cfg.logger.Debug("refreshing the metadata of unclaimed partitions failed", slog.Any("topics", topics), slog.Any("err", err))
			}
		})
	}
}

// delivered records that records up to offset last were processed on cs, and
// logs the end of a stall checkStalls reported.
func (a *App) delivered(cs *claimState, last int64) {
	cs.next.Store(last + 1)
	if at := cs.stalled.Swap(0); at != 0 {
		a.cfg.logger.Info("partition delivering again", slog.String("application_id", a.cfg.appID),
			slog.String("topic", cs.claim.Topic()), slog.Int("partition", int(cs.claim.Partition())),
			slog.Duration("after_warning", time.Since(time.Unix(0, at)).Round(time.Millisecond)))
	}
}
