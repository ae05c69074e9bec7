package deploy

import (
	"os"
	"testing"

	"github.com/lading-registry/lading/internal/testserver"
)

func TestMain(m *testing.M) { os.Exit(testserver.Main(m)) }
