package main

import (
	"fmt"
	"time"
)

// FaultKind is one kind of injected fault.
type FaultKind int

// The faults the driver injects.
const (
	// FaultKillAggregator SIGKILLs a running aggregator and starts it again.
	FaultKillAggregator FaultKind = iota
	// FaultRestartBroker stops the Kafka broker (keeping its data) and
	// starts it again.
	FaultRestartBroker
	// FaultKillAPI SIGKILLs the API process under load and starts it again.
	FaultKillAPI
	// FaultStopAggregator stops an aggregator for good with SIGTERM.
	FaultStopAggregator
)

// String names the fault for logs.
func (k FaultKind) String() string {
	switch k {
	case FaultKillAggregator:
		return "SIGKILL aggregator"
	case FaultRestartBroker:
		return "restart broker"
	case FaultKillAPI:
		return "SIGKILL API"
	case FaultStopAggregator:
		return "stop aggregator"
	}
	if s, ok := clusterFaultName(k); ok {
		return s
	}
	return fmt.Sprintf("fault(%d)", int(k))
}

// Fault is one planned fault: its kind and when, counted from the start of
// the generator.
type Fault struct {
	At   time.Duration
	Kind FaultKind
}

// Schedule spreads the faults evenly over a generation of length d: the
// i-th of n faults happens at (i+1)/(n+1) of d. Aggregator kills, broker
// restarts and API kills take turns, so different faults hit different
// moments; aggregators are stopped for good last, so most of the run has
// all of them.
func Schedule(d time.Duration, kills, brokerRestarts, apiKills, stops int) []Fault {
	var kinds []FaultKind
	left := map[FaultKind]int{FaultKillAggregator: kills, FaultRestartBroker: brokerRestarts, FaultKillAPI: apiKills}
	for {
		added := false
		for _, k := range []FaultKind{FaultKillAggregator, FaultRestartBroker, FaultKillAPI} {
			if left[k] > 0 {
				left[k]--
				kinds = append(kinds, k)
				added = true
			}
		}
		if !added {
			break
		}
	}
	for range stops {
		kinds = append(kinds, FaultStopAggregator)
	}
	out := make([]Fault, len(kinds))
	for i, k := range kinds {
		out[i] = Fault{At: d * time.Duration(i+1) / time.Duration(len(kinds)+1), Kind: k}
	}
	return out
}
