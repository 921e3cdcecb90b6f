// Command plot draws the charts of docs/performance.md from the benchmark
// results in bench/results:
//
//	perf-throughput.png  records/s of each engine (bench/compare: latest.json, full-5m.json)
//	perf-rss.png         peak RSS of each engine (the same files)
//	perf-cpu.png         CPU per record of each engine and of the broker (the same files)
//	perf-latency.png     end-to-end and POST latency (bench/latency: latency.json)
//	perf-ingest.png      ingest throughput (bench/ingest: ingest.json)
//	perf-scale.png       records/s by keys and store, restore time (bench-scale: scale.json)
//
// into docs/img. A chart whose input is missing is skipped with a message;
// the exit status is non-zero only if a chart could not be drawn or written.
//
//	go run ./bench/plot [-results bench/results] [-out docs/img] [-compare latest.json,full-5m.json]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/emostream/emostream/bench/internal/harness"
)

// chart is one output file and how to draw it.
type chart struct {
	file string
	draw func(in inputs, path string) error
}

// inputs are the result files, read once; a nil field is a missing file.
type inputs struct {
	compares []*compareRun
	latency  *latencyRun
	ingest   *ingestRun
	scale    *scaleRun
}

// errSkip marks a chart whose input is missing.
type errSkip struct{ reason string }

func (e errSkip) Error() string { return e.reason }

func main() {
	root, err := harness.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(2)
	}
	fsf := flag.NewFlagSet("plot", flag.ContinueOnError)
	results := fsf.String("results", filepath.Join(root, "bench", "results"), "`directory` of the result files")
	out := fsf.String("out", filepath.Join(root, "docs", "img"), "`directory` for the PNG files")
	compare := fsf.String("compare", "quick.json,full-5m.json,full-5m-eos.json", "bench/compare result `files` (in -results), one bar series each")
	if err := fsf.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}

	var in inputs
	warn := func(name string, err error) {
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "plot: %s: %v\n", name, err)
		}
	}
	seen := map[string]bool{}
	for _, name := range harness.SplitList(*compare) {
		c, err := readCompare(filepath.Join(*results, name))
		if err != nil {
			warn(name, err)
			continue
		}
		// latest.json may be a copy of the full run: draw it once.
		id := fmt.Sprintf("%s/%d", c.Date, c.Records)
		if seen[id] {
			continue
		}
		seen[id] = true
		c.file = name
		in.compares = append(in.compares, c)
	}
	if l, err := readLatency(filepath.Join(*results, "latency.json")); err == nil {
		in.latency = l
	} else {
		warn("latency.json", err)
	}
	if g, err := readIngest(filepath.Join(*results, "ingest.json")); err == nil {
		in.ingest = g
	} else {
		warn("ingest.json", err)
	}
	if sc, err := readScale(filepath.Join(*results, "scale.json")); err == nil {
		in.scale = sc
	} else {
		warn("scale.json", err)
	}

	charts := []chart{
		{"perf-throughput.png", drawThroughput},
		{"perf-rss.png", drawRSS},
		{"perf-cpu.png", drawCPU},
		{"perf-latency.png", drawLatency},
		{"perf-ingest.png", drawIngest},
		{"perf-scale.png", drawScale},
	}
	failed := false
	for _, c := range charts {
		path := filepath.Join(*out, c.file)
		err := c.draw(in, path)
		var skip errSkip
		switch {
		case errors.As(err, &skip):
			fmt.Printf("skipped %s: %s\n", c.file, skip.reason)
		case err != nil:
			fmt.Fprintf(os.Stderr, "plot: %s: %v\n", c.file, err)
			failed = true
		default:
			fmt.Printf("wrote %s\n", relTo(root, path))
		}
	}
	if failed {
		os.Exit(1)
	}
}

func relTo(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}
