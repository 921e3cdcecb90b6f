package aggregation_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadmeRecipe: the "Write your own aggregator" code in
// examples/emostream/README.md is the code Example runs.
func TestReadmeRecipe(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(src), "// recipe:start\n")
	require.True(t, ok)
	recipe, _, ok := strings.Cut(rest, "// recipe:end")
	require.True(t, ok)
	recipe = strings.Trim(recipe, "\n")
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), "### Write your own aggregator")
	require.Contains(t, string(readme), "```go\n"+recipe+"\n```", "README's recipe differs from example_test.go's; copy it over")
}
