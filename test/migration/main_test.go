package migration

import (
	"os"
	"testing"

	"github.com/lading-registry/lading/internal/testserver"
)

// TestMain builds lading once for every test of the package.
func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }
