package window_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emostream/emostream/pkg/stream"
	"github.com/emostream/emostream/pkg/stream/streamtest"
	"github.com/emostream/emostream/pkg/window"
)

// TestDataDriven runs the window semantics cases in testdata/: input records,
// wall-clock advances and redeliveries, each followed by the exact output
// (results and late records) expected since the previous expect.
//
//	config size=MS advance=MS grace=MS emit=update|final wall=true|false
//	config gap=MS grace=MS emit=... wall=...   (session windows; end inclusive)
//	config diff=MS grace=MS emit=... wall=...  (sliding windows; end inclusive)
//	pipe KEY TS        a record at event time TS (ms)
//	advance MS         move the wall clock
//	redeliver P OFF    Kafka redelivers partition P from offset OFF
//	expect             then lines "KEY START END COUNT" and "late P/OFF"
func TestDataDriven(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runDataDriven(t, f) })
	}
}

func runDataDriven(t *testing.T, path string) {
	fh, err := os.Open(path)
	require.NoError(t, err)
	defer fh.Close()
	var (
		d      *streamtest.Driver
		in     *streamtest.InputTopic[string, string]
		out    *streamtest.OutputTopic[window.Windowed[string], int64]
		want   []string
		inWant bool
		lineNo int
	)
	check := func() {
		if d == nil {
			return
		}
		var got []string
		kvs, err := out.ReadKeyValues()
		require.NoError(t, err)
		for _, kv := range kvs {
			got = append(got, fmt.Sprintf("%s %d %d %d", kv.Key.Key, kv.Key.Start.UnixMilli(), kv.Key.End.UnixMilli(), kv.Value))
		}
		for _, r := range d.RawOutput("late") {
			hs := map[string]string{}
			for _, h := range r.Headers {
				hs[h.Key] = string(h.Value)
			}
			require.Equal(t, "late", hs["error"])
			got = append(got, "late "+hs["source_partition"]+"/"+hs["source_offset"])
		}
		require.Equal(t, want, got, "%s: expect block ending before line %d", path, lineNo)
		want, inWant = nil, false
	}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case "config":
			if inWant {
				check() // against the previous configuration's driver
			}
			kv := map[string]string{}
			for _, p := range f[1:] {
				k, v, _ := strings.Cut(p, "=")
				kv[k] = v
			}
			msArg := func(k string) time.Duration {
				n, err := strconv.Atoi(kv[k])
				require.NoError(t, err, "line %d: %s", lineNo, k)
				return time.Duration(n) * time.Millisecond
			}
			emit := window.OnWindowUpdate
			if kv["emit"] == "final" {
				emit = window.OnWindowClose
			}
			b := stream.NewBuilder()
			src := stream.Source(b, "in", stream.String(), stream.String())
			opts := []window.Opt{window.Emit(emit), window.WallClockClose(kv["wall"] == "true"), window.LateRecordsTo("late"), window.Named("c")}
			var counts *stream.Stream[window.Windowed[string], int64]
			if _, ok := kv["gap"]; ok {
				counts = window.CountSessions(stream.GroupByKey(src), window.OfInactivityGapAndGrace(msArg("gap"), msArg("grace")), opts...)
			} else if _, ok := kv["diff"]; ok {
				counts = window.Count(stream.GroupByKey(src), window.OfTimeDifferenceAndGrace(msArg("diff"), msArg("grace")), opts...)
			} else {
				counts = window.Count(stream.GroupByKey(src), window.OfSizeAndGrace(msArg("size"), msArg("grace")).AdvanceBy(msArg("advance")), opts...)
			}
			counts.To("out", window.WindowedSerde(stream.String()), stream.Int64())
			top, err := b.Build()
			require.NoError(t, err)
			d, err = streamtest.New(top, stream.StartTime(time.UnixMilli(0)))
			require.NoError(t, err)
			defer d.Close()
			in = streamtest.NewInputTopic(d, "in", stream.String(), stream.String())
			out = streamtest.NewOutputTopic(d, "out", window.WindowedSerde(stream.String()), stream.Int64())
		case "pipe", "advance", "redeliver":
			if inWant {
				check()
			}
			switch f[0] {
			case "pipe":
				ts, err := strconv.ParseInt(f[2], 10, 64)
				require.NoError(t, err)
				require.NoError(t, in.PipeAt(f[1], "", time.UnixMilli(ts)))
			case "advance":
				ms, err := strconv.Atoi(f[1])
				require.NoError(t, err)
				require.NoError(t, d.AdvanceWallClock(time.Duration(ms)*time.Millisecond))
			case "redeliver":
				p, err1 := strconv.Atoi(f[1])
				off, err2 := strconv.ParseInt(f[2], 10, 64)
				require.NoError(t, err1)
				require.NoError(t, err2)
				require.NoError(t, d.Redeliver("in", int32(p), off))
			}
		case "expect":
			if inWant {
				check()
			}
			inWant = true
		default:
			require.True(t, inWant, "line %d: %q outside an expect block", lineNo, line)
			want = append(want, line)
		}
	}
	require.NoError(t, sc.Err())
	if inWant {
		check()
	}
}
