package stream

import (
	"strconv"
	"strings"
	"time"
)

// Commit epochs number a task's commits. Epoch E is current from the commit
// that covered E-1 until the commit that covers E: everything the task's
// processors forward and write while E is current reaches Kafka before, and
// is covered by, the commit that records E. The last covered epoch and the
// task's stream time travel in the metadata of the task's committed input
// offsets, so a new owner of the task — after a restart, a rebalance or a
// crash — knows which results the previous owner may not have delivered.

// commitMetaPrefix starts the offset commit metadata written by this runtime,
// followed by space-separated key=value fields:
//
//	stream/v1 epoch=12 st=1700000000123 wt=1700000000456
//
// epoch is the last commit epoch the commit covers, st the task's stream time
// in Unix milliseconds (absent while the task has seen no record), wt the
// wall-clock time (Unix ms) at which the task last had processed everything
// its input held (see [InputCompleteAt]; absent if unknown). Unknown fields
// are ignored; metadata of another format or version, or none, reads as
// epoch 0 and unknown times.
const commitMetaPrefix = "stream/v1"

// encodeCommitMeta builds the offset commit metadata for epoch and stream time st.
func encodeCommitMeta(epoch uint64, st time.Time) string {
	b := make([]byte, 0, 48)
	b = append(b, commitMetaPrefix...)
	b = append(b, " epoch="...)
	b = strconv.AppendUint(b, epoch, 10)
	if !st.IsZero() {
		b = append(b, " st="...)
		b = strconv.AppendInt(b, st.UnixMilli(), 10)
	}
	return string(b)
}

// parseCommitMeta reads metadata written by encodeCommitMeta. Anything else
// (another client's metadata, an unknown version, a malformed epoch) gives
// epoch 0 and a zero stream time; a malformed st alone gives a zero stream
// time.
func parseCommitMeta(s string) (epoch uint64, st time.Time) {
	fields := strings.Fields(s)
	if len(fields) == 0 || fields[0] != commitMetaPrefix {
		return 0, time.Time{}
	}
	haveEpoch := false
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "epoch":
			e, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, time.Time{}
			}
			epoch, haveEpoch = e, true
		case "st":
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				st = time.UnixMilli(ms)
			}
		}
	}
	if !haveEpoch {
		return 0, time.Time{}
	}
	return epoch, st
}

// withInputComplete appends the wt field (see commitMetaPrefix) to meta.
func withInputComplete(meta string, complete time.Time) string {
	if complete.IsZero() {
		return meta
	}
	return meta + " wt=" + strconv.FormatInt(complete.UnixMilli(), 10)
}

// parseInputComplete reads the wt field of metadata written by this runtime
// (zero if absent or malformed).
func parseInputComplete(meta string) time.Time {
	fields := strings.Fields(meta)
	if len(fields) == 0 || fields[0] != commitMetaPrefix {
		return time.Time{}
	}
	for _, f := range fields[1:] {
		if v, ok := strings.CutPrefix(f, "wt="); ok {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				return time.UnixMilli(ms)
			}
		}
	}
	return time.Time{}
}

// committedPosition is a source partition's committed offset and metadata.
type committedPosition struct {
	offset int64 // -1: none
	meta   string
}

// taskStart is what a task learns about its last commit when it is created:
// the committed offsets and metadata of its source partitions.
type taskStart struct {
	// committed holds, per resolved source topic, the partition's committed
	// offset and metadata (absent: unknown, treated as none).
	committed map[string]committedPosition
	// started is when the application started: the input-complete time of
	// a task whose commits do not record one (see InputCompleteAt).
	started time.Time
}

// inputComplete returns the task's input-complete time recorded by its last
// commit: the earliest over its source topics, or s.started when any of
// them recorded none.
func (s taskStart) inputComplete(topics []string) time.Time {
	var out time.Time
	for _, topic := range topics {
		cp, ok := s.committed[topic]
		if !ok {
			return s.started
		}
		wt := parseInputComplete(cp.meta)
		if wt.IsZero() {
			return s.started
		}
		if out.IsZero() || wt.Before(out) {
			out = wt
		}
	}
	if out.IsZero() {
		return s.started
	}
	return out
}

// resolve returns the task's last committed epoch and stream time: the
// minimum over the task's source topics, 0 and zero when any of them has
// none.
func (s taskStart) resolve(topics []string) (uint64, time.Time) {
	var epoch uint64
	var st time.Time
	first := true
	for _, topic := range topics {
		cp, ok := s.committed[topic]
		if !ok {
			return 0, time.Time{}
		}
		e, t := parseCommitMeta(cp.meta)
		if first || e < epoch {
			epoch = e
		}
		if first || t.IsZero() || (!st.IsZero() && t.Before(st)) {
			st = t
		}
		first = false
	}
	if first {
		return 0, time.Time{}
	}
	return epoch, st
}

// epochState is a task's commit epoch bookkeeping; guarded by the task's mu.
type epochState struct {
	current   uint64    // the epoch CommitEpoch returns
	used      bool      // CommitEpoch was called while current was current
	committed uint64    // the last epoch a successful commit covered
	st        time.Time // the stream time in the last committed metadata
}

// needsCommit reports whether the task's next commit must record a new
// epoch: the current one was used, an advanced epoch's commit was not
// confirmed, or stream time moved since the last commit.
func (t *task) needsCommit() bool {
	e := &t.epoch
	return e.used || e.current != e.committed+1 || !t.streamTime.Equal(e.st)
}

// commitMeta returns the metadata for the task's next commit and whether
// the commit covers the current epoch (then the caller advances it). The
// caller holds t.mu.
func (t *task) commitMeta() (meta string, epoch uint64, advance bool) {
	if t.needsCommit() {
		return withInputComplete(encodeCommitMeta(t.epoch.current, t.streamTime), t.completeAt), t.epoch.current, true
	}
	return withInputComplete(encodeCommitMeta(t.epoch.committed, t.epoch.st), t.completeAt), t.epoch.committed, false
}

// advanceEpoch starts the epoch after epoch: what the processors do from now
// on is covered only by a later commit. The caller holds t.mu.
func (t *task) advanceEpoch(epoch uint64) {
	if t.epoch.current <= epoch {
		t.epoch.current = epoch + 1
		t.epoch.used = false
	}
}

// epochCommitted records that a commit covering epoch with stream time st
// succeeded. The caller holds t.mu.
func (t *task) epochCommitted(epoch uint64, st time.Time) {
	if epoch >= t.epoch.committed {
		t.epoch.committed = epoch
		t.epoch.st = st
	}
	t.advanceEpoch(epoch)
}
