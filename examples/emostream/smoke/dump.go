package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// dump writes the run's data into dir for a post-mortem: one TSV file per
// topic (partition, offset, record timestamp in epoch ms, key, value,
// headers) and the generator's
// status of every emoji, run-length encoded.
func dump(dir string, d Data) error {
	for _, t := range []struct {
		name string
		recs []Record
	}{{"topic1.tsv", d.Topic1}, {"topic2.tsv", d.Topic2}, {"dlq.tsv", d.DLQ}} {
		if err := writeFile(filepath.Join(dir, t.name), func(w *bufio.Writer) {
			for _, r := range t.recs {
				var hs []string
				for k, v := range r.Headers {
					hs = append(hs, k+"="+v)
				}
				sort.Strings(hs)
				fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\t%s\n", r.Partition, r.Offset, r.Timestamp, r.Key, r.Value, strings.Join(hs, ";"))
			}
		}); err != nil {
			return err
		}
	}
	names := map[Status]string{StatusPending: "pending", StatusAcked: "acked", StatusFailed: "failed", StatusUnsent: "unsent"}
	return writeFile(filepath.Join(dir, "status.tsv"), func(w *bufio.Writer) {
		for i := 0; i < len(d.Status); {
			j := i
			for j+1 < len(d.Status) && d.Status[j+1] == d.Status[i] {
				j++
			}
			fmt.Fprintf(w, "%s%d\t%s%d\t%s\n", d.Prefix, i, d.Prefix, j, names[d.Status[i]])
			i = j + 1
		}
	})
}

// dumpRaw writes records of a topic with binary keys and values (the
// aggregator's changelog and repartition topics) as Go-quoted strings.
func dumpRaw(path string, recs []Record) error {
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Partition != recs[j].Partition {
			return recs[i].Partition < recs[j].Partition
		}
		return recs[i].Offset < recs[j].Offset
	})
	return writeFile(path, func(w *bufio.Writer) {
		for _, r := range recs {
			var hs []string
			for k, v := range r.Headers {
				hs = append(hs, fmt.Sprintf("%s=%q", k, v))
			}
			sort.Strings(hs)
			fmt.Fprintf(w, "%d\t%d\t%d\t%q\t%q\t%s\n", r.Partition, r.Offset, r.Timestamp, r.Key, r.Value, strings.Join(hs, ";"))
		}
	})
}

func writeFile(path string, fill func(w *bufio.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fill(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
