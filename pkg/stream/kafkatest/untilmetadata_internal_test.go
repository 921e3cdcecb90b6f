package kafkatest

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUntilMetadata(t *testing.T) {
	tries := 0
	require.NoError(t, untilMetadata(func() error {
		if tries++; tries < 3 {
			return errors.New("not yet")
		}
		return nil
	}))
	require.Equal(t, 3, tries, "asks again after a passing error until it succeeds")

	gone := errors.New("gone")
	tries = 0
	start := time.Now()
	err := untilMetadata(func() error { tries++; return permanentError{gone} })
	require.Same(t, gone, err, "a permanent error is returned unwrapped")
	require.Equal(t, 1, tries, "and at once")
	require.Less(t, time.Since(start), time.Second)
}
