package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emostream/emostream/bench/internal/harness"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on
// every Linux architecture Go supports).
const clockTicks = 100

// tree measures a stack's processes: the children the benchmark started
// and all their descendants (pyspark starts a JVM). Every interval it
// samples the memory of the whole tree and keeps the peak: the summed PSS
// (proportional set size, /proc/<pid>/smaps_rollup: a page shared by n
// processes counts 1/n in each, so forks and shared libraries are counted
// once) and the summed RSS (shared pages counted in every process). It also
// keeps the CPU time each process used, so a process that exited keeps its
// share.
type tree struct {
	roots []int

	mu      sync.Mutex
	cpu     map[int]float64 // last CPU seconds seen per pid
	peak    float64         // summed PSS, MiB
	peakRSS float64         // summed RSS, MiB
	maxRSS  map[int]float64 // peak RSS per pid, MiB
	pids    map[int]string  // every pid ever seen in the tree, and its command
	sampler *harness.Sampler
}

func newTree(roots []int, interval time.Duration) *tree {
	t := &tree{roots: roots, cpu: map[int]float64{}, pids: map[int]string{}, maxRSS: map[int]float64{}}
	t.sampler = harness.StartSampler(interval, t.sample)
	return t
}

// stop ends the sampling (after a last sample).
func (t *tree) stop() {
	t.sampler.Stop()
	t.sample()
}

// members returns the roots and their descendants now running.
func (t *tree) members() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return t.roots
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := ppid(pid); ok {
			children[pp] = append(children[pp], pid)
		}
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		out = append(out, p)
		for _, c := range children[p] {
			walk(c)
		}
	}
	for _, r := range t.roots {
		walk(r)
	}
	return out
}

func (t *tree) sample() {
	var rss, pss float64
	cpu := map[int]float64{}
	each := map[int]float64{}
	comms := map[int]string{}
	for _, pid := range t.members() {
		if c, ok := procCPU(pid); ok {
			cpu[pid] = c
			comms[pid] = procComm(pid)
		}
		// A child that has not called exec yet runs its parent's
		// program; after a vfork (the JVM starts programs through
		// posix_spawn) it even shares the parent's memory, which would
		// count twice. Its memory is the parent's until it execs.
		if pp, ok := ppid(pid); ok && t.inTree(pp) && sameExe(pid, pp) {
			continue
		}
		r := procMemMiB(pid, "status", "VmRSS:")
		each[pid] = r
		rss += r
		pss += procMemMiB(pid, "smaps_rollup", "Pss:")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid, r := range each {
		t.maxRSS[pid] = max(t.maxRSS[pid], r)
	}
	for pid, c := range cpu {
		t.cpu[pid] = c
		t.pids[pid] = comms[pid] // the latest: a script may exec a program
	}
	t.peak = max(t.peak, pss)
	t.peakRSS = max(t.peakRSS, rss)
}

// inTree reports whether pid is a root or was seen in the tree.
func (t *tree) inTree(pid int) bool {
	for _, r := range t.roots {
		if r == pid {
			return true
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.pids[pid]
	return ok
}

// sameExe reports whether two processes run the same executable.
func sameExe(a, b int) bool {
	ea, err1 := os.Readlink("/proc/" + strconv.Itoa(a) + "/exe")
	eb, err2 := os.Readlink("/proc/" + strconv.Itoa(b) + "/exe")
	return err1 == nil && err2 == nil && ea == eb
}

// cpuSeconds is the CPU time of every process seen in the tree so far.
func (t *tree) cpuSeconds() float64 {
	t.sample()
	t.mu.Lock()
	defer t.mu.Unlock()
	var sum float64
	for _, c := range t.cpu {
		sum += c
	}
	return sum
}

// peakMiB is the largest summed PSS and the largest summed RSS sampled.
func (t *tree) peakMiB() (pss, rss float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.peak, t.peakRSS
}

// largest is the process with the highest peak RSS: its command and that
// peak.
func (t *tree) largest() (string, float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	comm, peak := "", 0.0
	for pid, r := range t.maxRSS {
		if r > peak {
			comm, peak = t.pids[pid], r
		}
	}
	return comm, peak
}

// processes counts the distinct processes the tree had, by command name.
func (t *tree) processes() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for _, comm := range t.pids {
		out[comm]++
	}
	return out
}

func procComm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// statFields returns the fields of /proc/<pid>/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func ppid(pid int) (int, bool) {
	f := statFields(pid)
	if len(f) < 2 {
		return 0, false
	}
	p, err := strconv.Atoi(f[1])
	return p, err == nil
}

// procCPU is utime + stime of pid, in seconds.
func procCPU(pid int) (float64, bool) {
	f := statFields(pid) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return (u + s) / clockTicks, true
}

// procMemMiB reads the kB figure of field (e.g. "VmRSS:") from
// /proc/<pid>/<file>.
func procMemMiB(pid int, file, field string) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + file)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
