package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series colours: ours first, then the others, colour-blind friendly
// (Okabe–Ito).
var palette = []color.Color{
	color.RGBA{0, 114, 178, 255},   // blue
	color.RGBA{230, 159, 0, 255},   // orange
	color.RGBA{0, 158, 115, 255},   // green
	color.RGBA{204, 121, 167, 255}, // purple
	color.RGBA{86, 180, 233, 255},  // sky
}

var targetColor = color.RGBA{213, 94, 0, 255} // vermillion

// series is one set of bars of a grouped bar chart; a NaN value is a
// missing bar.
type series struct {
	name   string
	values []float64
}

// groupedBars adds one bar per category and series, each labelled with its
// value, and a legend entry per series (when there are several). It
// returns the bar charts, in series order.
func groupedBars(p *plot.Plot, categories []string, ss []series, format func(float64) string) ([]*plotter.BarChart, error) {
	n := len(ss)
	width := vg.Points(math.Min(44, 110/float64(n)))
	var bars []*plotter.BarChart
	for i, s := range ss {
		vals := make(plotter.Values, len(s.values))
		var xys plotter.XYs
		var labels []string
		for j, v := range s.values {
			if math.IsNaN(v) {
				continue
			}
			vals[j] = v
			xys = append(xys, plotter.XY{X: float64(j), Y: v})
			labels = append(labels, format(v))
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		b.Color = palette[i%len(palette)]
		b.LineStyle.Width = 0
		b.Offset = vg.Length(float64(i)-float64(n-1)/2) * width
		p.Add(b)
		if n > 1 {
			p.Legend.Add(s.name, b)
		}
		bars = append(bars, b)
		if len(xys) > 0 {
			l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return nil, err
			}
			for k := range l.TextStyle {
				l.TextStyle[k].Font.Size = vg.Points(8)
				l.TextStyle[k].XAlign = draw.XCenter
				l.TextStyle[k].YAlign = draw.YBottom
			}
			l.Offset = vg.Point{X: b.Offset, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	nominalX(p, categories)
	p.Legend.Top = true
	p.Legend.Left = false
	p.Y.Min = 0
	return bars, nil
}

// nominalX names the categories at x = 0, 1, ... and gives each the same
// room (the bars' widths are in points, not in data units, so the axis
// range is fixed rather than derived from them).
func nominalX(p *plot.Plot, categories []string) {
	p.NominalX(categories...)
	p.X.Min, p.X.Max = -0.5, float64(len(categories))-0.5
}

// hline draws a dashed horizontal line at y from x0 to x1, with a legend
// entry if name is not empty.
func hline(p *plot.Plot, y, x0, x1 float64, name string) error {
	l, err := plotter.NewLine(plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}})
	if err != nil {
		return err
	}
	l.Color = targetColor
	l.Width = vg.Points(1.5)
	l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	p.Add(l)
	if name != "" {
		p.Legend.Add(name, l)
	}
	return nil
}

// niceTicks labels about six round values (1, 2, 2.5 or 5 times a power
// of ten apart) with thousands separators, with an unlabelled minor tick
// between each two.
type niceTicks struct{}

func (niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	decimals := 0
	if step < 1 {
		decimals = int(math.Ceil(-math.Log10(step) + 1e-9))
		if step*math.Pow(10, float64(decimals)) != math.Round(step*math.Pow(10, float64(decimals))) {
			decimals++
		}
	}
	var ts []plot.Tick
	first := math.Ceil(lo / step)
	for i := 0.0; (first+i)*step <= hi+step*1e-9; i++ {
		v := (first + i) * step
		label := fmt.Sprintf("%.*f", decimals, v)
		if decimals == 0 {
			label = thousands(int(math.Round(v)))
		}
		ts = append(ts, plot.Tick{Value: v, Label: label})
		if minor := v + step/2; minor <= hi {
			ts = append(ts, plot.Tick{Value: minor})
		}
	}
	return ts
}

func newPlot(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(12)
	p.Y.Label.Text = ylabel
	p.Y.Tick.Marker = niceTicks{}
	p.Add(plotter.NewGrid())
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	return p
}

// headroom leaves space above the tallest bar for its label and the legend.
func headroom(p *plot.Plot, factor float64) { p.Y.Max *= factor }

// save renders the plots side by side into a PNG file at path.
func save(path string, w, h vg.Length, plots ...*plot.Plot) error {
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(144), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	if len(plots) == 1 {
		plots[0].Draw(dc)
	} else {
		tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Points(18),
			PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
		canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
		for i, p := range plots {
			p.Draw(canvases[0][i])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// engineSeries returns the engines present in any run, in engineOrder, and
// one series per run of value(engine) (NaN where a run lacks the engine or
// value returns NaN).
func engineSeries(runs []*compareRun, value func(*compareEngine) float64) ([]string, []series) {
	var keys, labels []string
	for _, e := range engineOrder {
		for _, r := range runs {
			if en := r.Engines[e.key]; en != nil && en.OK {
				keys, labels = append(keys, e.key), append(labels, e.label)
				break
			}
		}
	}
	var ss []series
	for _, r := range runs {
		s := series{name: r.label()}
		for _, k := range keys {
			v := math.NaN()
			if en := r.Engines[k]; en != nil && en.OK {
				v = value(en)
			}
			s.values = append(s.values, v)
		}
		ss = append(ss, s)
	}
	return labels, ss
}

func compareSubtitle(runs []*compareRun) string {
	r := runs[0]
	guarantee := strings.ReplaceAll(r.Guarantee, "_", "-")
	for _, o := range runs[1:] {
		if o.Guarantee != r.Guarantee {
			guarantee = "guarantee per series"
		}
	}
	return fmt.Sprintf("%d partitions, %s, Kafka 4.4.0 on loopback, %s cores", r.Partitions, guarantee, orUnknown(r.Settings["cores"]))
}

func drawThroughput(in inputs, path string) error {
	if len(in.compares) == 0 {
		return errSkip{"no bench/compare results (make bench-compare writes bench/results/latest.json)"}
	}
	labels, ss := engineSeries(in.compares, func(e *compareEngine) float64 { return e.RPS })
	p := newPlot("Windowed count: records/s, process start to last result\n"+compareSubtitle(in.compares), "records/s")
	if _, err := groupedBars(p, labels, ss, func(v float64) string { return thousands(int(math.Round(v))) }); err != nil {
		return err
	}
	headroom(p, 1.25)
	return save(path, vg.Points(640), vg.Points(380), p)
}

func drawRSS(in inputs, path string) error {
	if len(in.compares) == 0 {
		return errSkip{"no bench/compare results (make bench-compare writes bench/results/latest.json)"}
	}
	labels, ss := engineSeries(in.compares, func(e *compareEngine) float64 {
		if e.PeakRSSMB <= 0 {
			return math.NaN()
		}
		return e.PeakRSSMB
	})
	p := newPlot("Peak resident memory (VmHWM) of the engine's process\n"+compareSubtitle(in.compares), "MiB")
	if _, err := groupedBars(p, labels, ss, func(v float64) string { return fmt.Sprintf("%.0f MiB", v) }); err != nil {
		return err
	}
	headroom(p, 1.2)
	return save(path, vg.Points(640), vg.Points(380), p)
}

func drawCPU(in inputs, path string) error {
	var withCPU []*compareRun
	for _, r := range in.compares {
		for _, e := range r.Engines {
			if e.CPUMicrosPerRec > 0 {
				withCPU = append(withCPU, r)
				break
			}
		}
	}
	if len(withCPU) == 0 {
		return errSkip{"no bench/compare result with CPU times"}
	}
	// The largest run: start-up costs weigh least there.
	r := slices.MaxFunc(withCPU, func(a, b *compareRun) int { return a.Records - b.Records })
	labels, ss := engineSeries([]*compareRun{r}, func(e *compareEngine) float64 { return e.CPUMicrosPerRec })
	_, bs := engineSeries([]*compareRun{r}, func(e *compareEngine) float64 {
		if e.BrokerCPUSeconds < 0 {
			return math.NaN()
		}
		return e.BrokerCPUSeconds / float64(r.Records) * 1e6
	})
	p := newPlot(fmt.Sprintf("CPU per input record, %s\n%s", r.label(), compareSubtitle([]*compareRun{r})), "CPU µs per record")
	width := vg.Points(60)
	eng, err := plotter.NewBarChart(nanToZero(ss[0].values), width)
	if err != nil {
		return err
	}
	eng.Color, eng.LineStyle.Width = palette[0], 0
	brk, err := plotter.NewBarChart(nanToZero(bs[0].values), width)
	if err != nil {
		return err
	}
	brk.Color, brk.LineStyle.Width = palette[1], 0
	brk.StackOn(eng)
	p.Add(eng, brk)
	p.Legend.Add("engine process", eng)
	p.Legend.Add("Kafka broker during the run", brk)
	var xys plotter.XYs
	var texts []string
	for i := range labels {
		top := eng.BarHeight(i) + brk.Values[i]
		xys = append(xys, plotter.XY{X: float64(i), Y: top})
		texts = append(texts, fmt.Sprintf("%.1f + %.1f", eng.Values[i], brk.Values[i]))
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return err
	}
	for k := range l.TextStyle {
		l.TextStyle[k].Font.Size = vg.Points(8)
		l.TextStyle[k].XAlign = draw.XCenter
		l.TextStyle[k].YAlign = draw.YBottom
	}
	l.Offset = vg.Point{Y: vg.Points(2)}
	p.Add(l)
	nominalX(p, labels)
	p.Y.Min = 0
	p.Legend.Top = true
	headroom(p, 1.25)
	return save(path, vg.Points(640), vg.Points(380), p)
}

func drawLatency(in inputs, path string) error {
	l := in.latency
	if l == nil {
		return errSkip{"no bench/results/latency.json (make bench-latency writes it)"}
	}
	cats := []string{"p50", "p90", "p99", "max"}
	vals := func(d dist) []float64 {
		if d.Count == 0 {
			return []float64{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
		}
		return []float64{d.P50, d.P90, d.P99, d.Max}
	}
	left := newPlot(fmt.Sprintf("Latency, %.0f emojis/s for %.0f s, %s",
		l.Settings.Rate, l.Settings.DurationSeconds, shortBroker(l.Broker)), "ms")
	_, err := groupedBars(left, cats, []series{
		{"result on /events, after window end + grace", vals(l.EndToEnd)},
		{"last result of each window", vals(l.WindowComplete)},
		{"POST -> 202 (Kafka acknowledged)", vals(l.Post)},
	}, func(v float64) string { return fmtMS(v) })
	if err != nil {
		return err
	}
	if l.TargetP99MS > 0 {
		if err := hline(left, l.TargetP99MS, -0.5, 3.5, fmt.Sprintf("target: p99 <= %s", fmtMS(l.TargetP99MS))); err != nil {
			return err
		}
	}
	left.Y.Max = math.Max(left.Y.Max, l.TargetP99MS) * 1.45

	right := newPlot(fmt.Sprintf("Each window: results after window end + %d ms grace", l.Settings.GraceMS), "ms")
	right.X.Label.Text = "window start, s into the run"
	if len(l.Windows) > 0 {
		t0 := l.Windows[0].Start
		var first, last plotter.XYs
		for _, w := range l.Windows {
			x := float64(w.Start-t0) / 1000
			first = append(first, plotter.XY{X: x, Y: w.FirstMS})
			last = append(last, plotter.XY{X: x, Y: w.LastMS})
		}
		for i, xys := range []plotter.XYs{last, first} {
			s, err := plotter.NewScatter(xys)
			if err != nil {
				return err
			}
			s.Color = palette[i]
			s.Radius = vg.Points(2.5)
			s.Shape = draw.CircleGlyph{}
			right.Add(s)
			right.Legend.Add([]string{"last result of the window", "first result of the window"}[i], s)
		}
		x1 := float64(l.Windows[len(l.Windows)-1].Start-t0) / 1000
		if l.TargetP99MS > 0 {
			if err := hline(right, l.TargetP99MS, 0, x1, ""); err != nil {
				return err
			}
		}
	}
	right.Y.Min = 0
	right.Y.Max = math.Max(right.Y.Max, l.TargetP99MS) * 1.3
	right.Legend.Top = true
	return save(path, vg.Points(980), vg.Points(400), left, right)
}

func drawIngest(in inputs, path string) error {
	g := in.ingest
	if g == nil {
		return errSkip{"no bench/results/ingest.json (make bench-ingest writes it)"}
	}
	var cats []string
	var vals []float64
	for _, m := range g.Modes {
		name := fmt.Sprintf("%s\n%d clients, %d per request", m.Name, m.Clients, m.Batch)
		if m.Batch == 1 {
			name = fmt.Sprintf("single POSTs\n%d clients", m.Clients)
		} else if m.Name == "batch" {
			name = fmt.Sprintf("batches of %d\n%d clients", m.Batch, m.Clients)
		}
		cats = append(cats, name)
		vals = append(vals, m.EmojisPerSecond)
	}
	p := newPlot(fmt.Sprintf("Ingest: emojis/s answered 202 (acknowledged by Kafka), %s\nload client, API and broker share %d cores; %.0f s per mode",
		shortBroker(g.Broker), g.Machine.Cores, g.DurationSeconds), "emojis/s")
	if _, err := groupedBars(p, cats, []series{{"emojis/s", vals}}, func(v float64) string { return thousands(int(math.Round(v))) + "/s" }); err != nil {
		return err
	}
	// Latency and errors inside each bar, or above a bar too short to hold
	// them.
	top := slices.Max(vals)
	for i, m := range g.Modes {
		inside := m.EmojisPerSecond >= 0.2*top
		xy := plotter.XY{X: float64(i)}
		if !inside {
			xy.Y = m.EmojisPerSecond
		}
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{xy},
			Labels: []string{fmt.Sprintf("p50 %s\np99 %s\nerrors %d", fmtMS(m.P50MS), fmtMS(m.P99MS), m.Errors)}})
		if err != nil {
			return err
		}
		st := &lab.TextStyle[0]
		st.Font.Size = vg.Points(8)
		st.XAlign, st.YAlign = draw.XCenter, draw.YBottom
		lab.Offset = vg.Point{Y: vg.Points(6)}
		if inside {
			st.Color = color.White
		} else {
			st.Color = color.Gray{Y: 60}
			lab.Offset.Y = vg.Points(16) // above the value label
		}
		p.Add(lab)
	}
	var txys plotter.XYs
	var ttexts []string
	for i, m := range g.Modes {
		if m.Target <= 0 {
			continue
		}
		// Either side of the bar, leaving its value label readable.
		x := float64(i)
		for _, seg := range [][2]float64{{x - 0.4, x - 0.12}, {x + 0.12, x + 0.4}} {
			if err := hline(p, m.Target, seg[0], seg[1], ""); err != nil {
				return err
			}
		}
		txys = append(txys, plotter.XY{X: x + 0.4, Y: m.Target})
		ttexts = append(ttexts, "target "+thousands(int(m.Target))+"/s")
	}
	if len(txys) > 0 {
		tl, err := plotter.NewLabels(plotter.XYLabels{XYs: txys, Labels: ttexts})
		if err != nil {
			return err
		}
		for k := range tl.TextStyle {
			tl.TextStyle[k].Font.Size = vg.Points(8)
			tl.TextStyle[k].Color = targetColor
			tl.TextStyle[k].XAlign = draw.XRight
			tl.TextStyle[k].YAlign = draw.YBottom
		}
		tl.Offset = vg.Point{Y: vg.Points(2)}
		p.Add(tl)
	}
	headroom(p, 1.3)
	return save(path, vg.Points(560), vg.Points(400), p)
}

func nanToZero(vs []float64) plotter.Values {
	out := make(plotter.Values, len(vs))
	for i, v := range vs {
		if !math.IsNaN(v) {
			out[i] = v
		}
	}
	return out
}

func fmtMS(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.1f ms", v)
	case v < 10000:
		return fmt.Sprintf("%.0f ms", v)
	default:
		return fmt.Sprintf("%.1f s", v/1000)
	}
}

func shortBroker(b string) string {
	if strings.HasPrefix(b, "embedded") {
		return "embedded broker"
	}
	if strings.HasPrefix(b, "Kafka") {
		return "Kafka on loopback"
	}
	return b
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func joinComma(ss []string) string { return strings.Join(ss, ", ") }

func thousands(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
