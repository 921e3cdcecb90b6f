package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSchedule(t *testing.T) {
	got := Schedule(70*time.Second, 3, 1, 1, 1)
	require.Equal(t, []Fault{
		{10 * time.Second, FaultKillAggregator},
		{20 * time.Second, FaultRestartBroker},
		{30 * time.Second, FaultKillAPI},
		{40 * time.Second, FaultKillAggregator},
		{50 * time.Second, FaultKillAggregator},
		{60 * time.Second, FaultStopAggregator},
	}, got)
	require.Empty(t, Schedule(time.Minute, 0, 0, 0, 0))
	require.Equal(t, []Fault{{30 * time.Second, FaultRestartBroker}}, Schedule(time.Minute, 0, 1, 0, 0))
	require.Equal(t, "SIGKILL API", FaultKillAPI.String())
}
