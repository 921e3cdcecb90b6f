package main

import (
	"fmt"
	"math"

	"gonum.org/v1/plot/vg"
)

// scaleRun is bench/results/scale.json (make bench-scale).
type scaleRun struct {
	Quick bool `json:"quick"`
	Rows  []struct {
		Keys          int     `json:"keys"`
		Store         string  `json:"store"`
		OursRPS       float64 `json:"ours_rps"`
		KStreamsRPS   float64 `json:"kstreams_rps"`
		Identical     bool    `json:"identical_results"`
		OursRSSMB     float64 `json:"ours_rss_mb"`
		KStreamsRSSMB float64 `json:"kstreams_rss_mb"`
	} `json:"rows"`
	Restore *struct {
		Keys      int     `json:"keys"`
		OursS     float64 `json:"ours_s"`
		KStreamsS float64 `json:"kstreams_s"`
	} `json:"restore"`
}

func readScale(path string) (*scaleRun, error) {
	var s scaleRun
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	if len(s.Rows) == 0 && s.Restore == nil {
		return nil, fmt.Errorf("%s: no rows and no restore run", path)
	}
	return &s, nil
}

// drawScale draws records/s of both engines per (keys, store) point, and
// the restore times beside it.
func drawScale(in inputs, path string) error {
	s := in.scale
	if s == nil {
		return errSkip{"no bench/results/scale.json (make bench-scale writes it)"}
	}
	quick := map[bool]string{true: "QUICK=1", false: "full run"}[s.Quick]
	var cats []string
	ours := series{name: "ours (pkg/stream)"}
	ks := series{name: "Kafka Streams 4.4.0"}
	for _, r := range s.Rows {
		cats = append(cats, fmt.Sprintf("%s keys\n%s", thousands(r.Keys), r.Store))
		ours.values = append(ours.values, zeroToNaN(r.OursRPS))
		ks.values = append(ks.values, zeroToNaN(r.KStreamsRPS))
	}
	p := newPlot("Windowed count by distinct keys per window and store kind: records/s\n(memory stores; disk: pebble vs RocksDB; "+quick+")", "records/s")
	if _, err := groupedBars(p, cats, []series{ours, ks}, func(v float64) string { return thousands(int(math.Round(v))) }); err != nil {
		return err
	}
	headroom(p, 1.25)
	if s.Restore == nil {
		return save(path, vg.Points(720), vg.Points(400), p)
	}
	r := newPlot(fmt.Sprintf("Restore of %s keys from the changelog\n(disk stores, local state lost)", thousands(s.Restore.Keys)), "seconds")
	if _, err := groupedBars(r, []string{"restore"}, []series{
		{name: ours.name, values: []float64{zeroToNaN(s.Restore.OursS)}},
		{name: ks.name, values: []float64{zeroToNaN(s.Restore.KStreamsS)}},
	}, func(v float64) string { return fmt.Sprintf("%.2f s", v) }); err != nil {
		return err
	}
	headroom(r, 1.25)
	return save(path, vg.Points(1500), vg.Points(440), p, r)
}

func zeroToNaN(v float64) float64 {
	if v <= 0 {
		return math.NaN()
	}
	return v
}
